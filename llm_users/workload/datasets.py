"""Prompt datasets (text, JSONL, ShareGPT files), read and checked before the test.

Every reader names the file and line of what it cannot use (the conversation datasets of
``conversation_data.py`` share these readers).

Formats (auto-detected, or forced with ``fmt``):

* ``text``: one prompt per line; blank lines are skipped (use JSONL for multi-line prompts).
* ``jsonl``: one JSON object per line: ``{"prompt": "..."}`` (sent as the user message) or
  ``{"messages": [{"role": ..., "content": ...}, ...]}`` (sent as they are), each with an
  optional ``"max_tokens"``; a line may also be a ShareGPT record (``{"conversations": ...}``).
* ``sharegpt``: a JSON list of ``{"conversations": [{"from": "human", "value": ...}, ...]}``
  (``"conversation"``, ``"role"``/``"content"``, ``"user"``/``"assistant"`` are accepted too).
  The first human turn is the prompt; records without one are skipped and counted. With
  ``use_output_len`` the first answer after it sets that request's max_tokens: its length in
  tokens by ``counter`` if one is given, else in whitespace-separated words (a rough stand-in:
  one English word is about 1.3 tokens); records without a non-empty answer are then skipped.

Detection: a ``.txt`` file is text; otherwise a file starting with ``[{`` (or any ``[`` in a
``.json`` file) is ShareGPT, one starting with ``{"`` is JSONL, and anything else is JSONL for
``.json``/``.jsonl``/``.ndjson`` and text for other names.

The whole file is read and checked before the test, one line or record at a time (a ShareGPT
file is never parsed as a whole); only the prompts are kept. Nothing in a file is evaluated.

Distributed runs: every process loads the file itself, so it must exist on every worker
machine. With ``partition=(i, n)`` worker ``i`` of ``n`` keeps the usable prompts ``i, i+n,
i+2n, ...`` (0-based, in file order): the workers' shares are disjoint and together cover the
file once per pass. With ``partition=(0, 1)`` and ``order="shuffle"`` every worker goes through
the whole list in its own random order (give each a different seed, e.g. seed + worker index;
``seed=None`` draws one). Build one source per process before the test and hand the same object
to all its users: ``next()`` never yields to gevent, so the users share one cursor safely.
"""

from __future__ import annotations

import codecs
import json
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO

from ..errors import ConfigError
from .prompts import Prompt
from .tokenizer import Counter

__all__ = [
    "FORMATS",
    "MAX_LINE_BYTES",
    "MAX_TOKENS",
    "DatasetPrompts",
    "bounded_lines",
    "load_dataset",
]

FORMATS = ("text", "jsonl", "sharegpt")
ORDERS = ("sequential", "shuffle")
Item = tuple[Prompt, int | None]

_NEEDS = 'a line needs "prompt" (a string) or "messages" (a list of {role, content})'
_NEEDS_SHAREGPT = 'a record needs "conversations" (a list of {from, value})'
HUMAN_ROLES = frozenset({"human", "user"})
ANSWER_ROLES = frozenset({"gpt", "assistant", "chatgpt", "bard", "bing", "model"})
_CHUNK = 1 << 20
# A line (or a ShareGPT record) longer than this is refused: a prompt of a million tokens is
# about 4 MiB of text, 24 MiB as JSON of escaped non-ASCII; past it a file is broken or
# hostile, and reading on would end in MemoryError (a 2 GiB line) instead of one line of error.
MAX_LINE_BYTES = 32 << 20
# A token count above this (max_tokens, a trace's lengths) is refused: the longest context
# windows offered are 10M tokens; a larger count is a mistake that would allocate its prompt
# or ask the server for more than any model can give.
MAX_TOKENS = 10_000_000
_NON_WS = re.compile(r"[^ \t\n\r]")  # JSON's whitespace, not Unicode's


class _Invalid(Exception):
    """A record is unusable; the caller adds the file and line."""


class DatasetPrompts:
    """The prompts of a loaded dataset: ``next()`` cycles through this process's share of them."""

    def __init__(self, items: Sequence[Item], *, order: str = "sequential",
                 seed: int | None = None, partition: tuple[int, int] = (0, 1),
                 path: str = "dataset", total: int | None = None,
                 skipped: int = 0) -> None:  # fmt: skip
        index, count = _check(order, partition)
        picks: Sequence[int] = range(index, len(items), count)
        if not picks:
            raise _empty_share(path, len(items), partition)
        if order == "shuffle":
            picks = list(picks)
            random.Random(seed).shuffle(picks)  # once, here: no reshuffling on the hot path
        self._items, self._picks, self._pos = items, picks, 0
        self.path, self.order, self.skipped = path, order, skipped
        self.total = len(items) if total is None else total  # usable prompts in the whole file

    def __len__(self) -> int:
        return len(self._picks)

    def next(self) -> tuple[Prompt, int | None]:
        item = self._items[self._picks[self._pos]]
        self._pos = (self._pos + 1) % len(self._picks)
        return item


def load_dataset(path: str | os.PathLike[str], *, fmt: str | None = None,
                 use_output_len: bool = False, counter: Counter | None = None,
                 order: str = "sequential", seed: int | None = None,
                 partition: tuple[int, int] = (0, 1)) -> DatasetPrompts:  # fmt: skip
    """Read and check the whole dataset file now; keep only this process's share of prompts."""
    path = os.fspath(path)
    index, count = _check(order, partition)  # before reading: a bad option fails fast
    if fmt is None:
        fmt = detect_format(path)
    elif fmt not in FORMATS:
        raise ConfigError(f"dataset format {fmt!r} is not one of {', '.join(FORMATS)}")
    items: list[Item] = []
    total = skipped = 0
    for item in _read(path, fmt, use_output_len, counter):
        if item is None:
            skipped += 1
            continue
        if total % count == index:  # the other workers keep the rest: memory stays 1/n each
            items.append(item)
        total += 1
    if not total:
        if skipped:
            what = "a non-empty first human turn" + (" and answer" if use_output_len else "")
            raise ConfigError(f"{path}: no prompts: all {skipped} records lack {what}")
        raise ConfigError(f"{path}: empty: no prompts")
    if not items:
        raise _empty_share(path, total, partition)
    return DatasetPrompts(items, order=order, seed=seed, path=path, total=total,
                          skipped=skipped)  # fmt: skip


def _check(order: str, partition: tuple[int, int]) -> tuple[int, int]:
    if order not in ORDERS:
        raise ConfigError(f"dataset order {order!r} is not one of {', '.join(ORDERS)}")
    index, count = partition
    if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
        raise ConfigError(f"dataset partition {partition!r}: needs (index, count), "
                          "0 <= index < count")  # fmt: skip
    return index, count


def _empty_share(path: str, total: int, partition: tuple[int, int]) -> ConfigError:
    index, count = partition
    return ConfigError(f"{path}: {total} prompt(s) leave none for partition {index} of {count}")


def _open(path: str) -> BinaryIO:
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
    with _open(path) as f:
        head = f.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
    after = head[1:].lstrip()[:1]
    if head[:1] == b"[" and (ext == ".json" or after in (b"{", b"]")):
        return "sharegpt"
    if head[:1] == b"{" and after in (b'"', b"}"):
        return "jsonl"
    return "jsonl" if ext in (".json", ".jsonl", ".ndjson") else "text"


def _read(path: str, fmt: str, use_output_len: bool,
          counter: Counter | None) -> Iterator[Item | None]:  # fmt: skip
    try:
        if fmt == "text":
            yield from ((line, None) for _, line in file_lines(path) if line.strip())
        elif fmt == "jsonl":
            for number, line in file_lines(path):
                if line.strip():
                    obj = json_line(path, number, line)
                    yield _at(path, number, _jsonl_item, obj, use_output_len, counter)
        else:
            for number, record, obj in JsonList(path):
                where = f"{number}: record {record}"  # a record's first line, then its index
                yield _at(path, where, _sharegpt_item, obj, use_output_len, counter)
    except OSError as exc:  # a read error after a successful open (e.g. a network drive)
        raise ConfigError(f"{path}: cannot read the dataset file ({exc.strerror})") from None


def _at(path: str, where: object, parse: Callable[..., Item | None], *args: Any) -> Item | None:
    try:
        return parse(*args)
    except _Invalid as exc:
        raise ConfigError(f"{path}:{where}: {exc}") from None


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
    with _open(path) as f:
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


def _jsonl_item(obj: Any, use_output_len: bool, counter: Counter | None) -> Item | None:
    if not isinstance(obj, dict):
        raise _Invalid(_NEEDS)
    if "conversations" in obj or "conversation" in obj:
        return _sharegpt_item(obj, use_output_len, counter)
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if isinstance(prompt, str) and messages is None:
        if not prompt.strip():
            raise _Invalid('"prompt" is empty')
        return prompt, _max_tokens(obj.get("max_tokens"))
    if prompt is None and messages is not None:
        return _messages(messages), _max_tokens(obj.get("max_tokens"))
    if prompt is not None and messages is not None:
        raise _Invalid('a line has both "prompt" and "messages": keep one')
    raise _Invalid(_NEEDS)


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _Invalid(f'"messages" must be a non-empty list of {{role, content}}, '
                       f"got {short_repr(value)}")  # fmt: skip
    for i, m in enumerate(value):
        ok = isinstance(m, dict) and isinstance(m.get("role"), str)
        if not ok or not isinstance(m.get("content"), (str, list)):
            raise _Invalid(f'messages[{i}] needs "role" (a string) and "content" (a string '
                           f"or a list of parts), got {short_repr(m)}")  # fmt: skip
    return value


def _max_tokens(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TOKENS
    if value is None or ok:
        return value
    raise _Invalid(f'"max_tokens" must be a whole number from 1 to {MAX_TOKENS:,}, '
                   f"got {short_repr(value)}")  # fmt: skip


def _sharegpt_item(obj: Any, use_output_len: bool,
                   counter: Counter | None) -> Item | None:  # fmt: skip
    """(first human turn, its answer's length or None); None if the record has no prompt."""
    turns = obj.get("conversations", obj.get("conversation")) if isinstance(obj, dict) else None
    if not isinstance(turns, list):
        raise _Invalid(_NEEDS_SHAREGPT)
    prompt = None
    for i, turn in enumerate(turns):  # only the turns used are checked: the rest is never sent
        if not isinstance(turn, dict):
            raise _Invalid(f"conversations[{i}] is not an object: {short_repr(turn)}")
        role = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if not isinstance(role, str) or not isinstance(text, str):
            raise _Invalid(f'conversations[{i}] needs "from" and "value" (strings), '
                           f"got {short_repr(turn)}")  # fmt: skip
        role = role.lower()
        if prompt is None:
            if role in HUMAN_ROLES:
                if not text.strip():
                    return None
                if not use_output_len:
                    return text, None
                prompt = text
        elif role in ANSWER_ROLES:
            n = counter(text) if counter is not None else len(text.split())
            return (prompt, n) if n > 0 else None
    return None


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
        with _open(self.path) as f:
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
