"""Reading input files with bounds: line by line (a bounded ``readline``), a JSON list one
element at a time, every problem a one-line ConfigError naming the file and the line.

The dataset, conversation and trace readers are built on these; nothing in a file is ever
evaluated, and no line or record is held past :data:`MAX_LINE_BYTES`.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from ..errors import ConfigError

__all__ = [
    "MAX_LINE_BYTES",
    "JsonList",
    "bounded_lines",
    "detect_format",
    "file_lines",
    "json_line",
    "open_file",
    "short_repr",
]

_CHUNK = 1 << 20


# A line (or a ShareGPT record) longer than this is refused: a prompt of a million tokens is
# about 4 MiB of text, 24 MiB as JSON of escaped non-ASCII; past it a file is broken or
# hostile, and reading on would end in MemoryError (a 2 GiB line) instead of one line of error.
MAX_LINE_BYTES = 32 << 20


_NON_WS = re.compile(r"[^ \t\n\r]")  # JSON's whitespace, not Unicode's


def open_file(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such dataset file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the dataset file ({exc.strerror})") from None


def detect_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in (".txt", ".text"):
        return "text"  # a text prompt may well start with "[" or "{"
    with open_file(path) as f:
        head = f.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
    after = head[1:].lstrip()[:1]
    if head[:1] == b"[" and (ext == ".json" or after in (b"{", b"]")):
        return "sharegpt"
    if head[:1] == b"{" and after in (b'"', b"}"):
        return "jsonl"
    return "jsonl" if ext in (".json", ".jsonl", ".ndjson") else "text"


def bounded_lines(f: Any, path: str, what: str = "line") -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of a binary file, each read with a bounded ``readline``: a line
    longer than :data:`MAX_LINE_BYTES` is a ConfigError before it is held whole."""
    number = 0
    while raw := f.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise ConfigError(f"{path}:{number}: {what} longer than {MAX_LINE_BYTES >> 20} MiB "
                              "(a broken file?)")  # fmt: skip
        yield number, raw


def file_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text without its line ending) of a UTF-8 file; a bad byte is a ConfigError."""
    offset = 0
    with open_file(path) as f:
        for number, raw in bounded_lines(f, path):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw, offset = raw[3:], 3
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, number, offset + exc.start, exc) from None
            offset += len(raw)
            yield number, line.rstrip("\r\n")


def _not_utf8(path: str, line: int, offset: int, exc: UnicodeDecodeError) -> ConfigError:
    bad = exc.object[exc.start : exc.end]
    return ConfigError(f"{path}:{line}: not UTF-8 (byte {bad!r} at byte offset {offset})")


def json_line(path: str, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno})") \
            from None  # fmt: skip
    except (ValueError, RecursionError) as exc:  # e.g. a 5,000-digit number, deep nesting
        raise ConfigError(f"{path}:{number}: not valid JSON ({type(exc).__name__})") from None


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class JsonList:
    """Yields (line, index, element) of a file holding one JSON list, one element at a time."""

    def __init__(self, path: str) -> None:
        self.path, self.buf, self.pos, self.line = path, "", 0, 1
        self._chunks = self._decoded()
        self._raw_decode = json.JSONDecoder().raw_decode

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        if self._peek() != "[":
            where = f"{self.path}:{self.line}"
            raise ConfigError(f"{where}: not a JSON list (ShareGPT is [{{...}}, ...])")
        self._skip(1)
        if self._peek() == "]":
            self._skip(1)
        else:
            index = 0
            while True:
                if not self._peek():
                    raise ConfigError(f"{self.path}:{self.line}: the JSON list is not closed")
                line, value = self.line, self._value()
                yield line, index, value
                index += 1
                c = self._peek()
                self._skip(1)
                if c == "]":
                    break
                if c != ",":
                    raise ConfigError(f"{self.path}:{self.line}: not valid JSON (expected ',' "
                                      f"or ']' after record {index - 1})")  # fmt: skip
        if self._peek():
            raise ConfigError(f"{self.path}:{self.line}: not valid JSON (data after the list)")

    def _decoded(self) -> Iterator[str]:
        """The file's text in chunks; a bad byte is reported with its line and byte offset."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset = newlines = 0  # bytes and newlines before the current chunk
        with open_file(self.path) as f:
            while True:
                raw = f.read(_CHUNK)
                if offset == 0 and raw.startswith(codecs.BOM_UTF8):
                    raw, offset = raw[3:], 3
                pending = len(decoder.getstate()[0])  # an incomplete character from before
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as exc:
                    line = 1 + newlines + exc.object[: exc.start].count(b"\n")
                    raise _not_utf8(self.path, line, offset - pending + exc.start, exc) from None
                offset, newlines = offset + len(raw), newlines + raw.count(b"\n")
                if text:
                    yield text
                if not raw:
                    return

    def _fill(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self.buf, self.pos = self.buf[self.pos :] + chunk, 0
        return True

    def _skip(self, n: int) -> None:
        end = self.pos + n
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def _peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file)."""
        while True:
            m = _NON_WS.search(self.buf, self.pos)
            if m:
                self._skip(m.start() - self.pos)
                return self.buf[self.pos]
            self._skip(len(self.buf) - self.pos)
            if not self._fill():
                return ""

    def _value(self) -> Any:
        while True:
            try:
                value, end = self._raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # Near the end of the buffer the element may just go on in the next chunk.
                cut = exc.pos >= len(self.buf) - 64 or exc.msg.startswith("Unterminated string")
                if cut and len(self.buf) - self.pos > MAX_LINE_BYTES:
                    raise ConfigError(
                        f"{self.path}:{self.line}: a record longer than "
                        f"{MAX_LINE_BYTES >> 20} MiB (a broken file?)"
                    ) from None
                if cut and self._fill():
                    continue
                line = self.line + self.buf.count("\n", self.pos, exc.pos)
                raise ConfigError(f"{self.path}:{line}: not valid JSON ({exc.msg})") from None
            except (ValueError, RecursionError) as exc:
                raise ConfigError(f"{self.path}:{self.line}: not valid JSON "
                                  f"({type(exc).__name__})") from None  # fmt: skip
            if end >= len(self.buf) and self._fill():
                continue  # a number at the buffer's end may go on in the next chunk
            self._skip(end - self.pos)
            return value
