"""Writers of output files: the JSON summary, the per-request records, any report's bytes.

A file that cannot be written is an :class:`OutputError`: one line naming the file and why.
Every output goes through :class:`OutputFile` (see docs/reference/security.md): a fresh
temporary file in the target folder, renamed over the target; never through a symbolic link,
never over anything but a regular file; a device or pipe (``/dev/stdout``) is streamed to.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from typing import IO, Any

import orjson

from ..measure.per_request import RequestResult

__all__ = ["OutputError", "OutputFile", "RecordsWriter", "make_folder", "write_bytes", "write_json"]

_RECORD_FIELDS = (
    "endpoint",
    "stream",
    "ok",
    "status",
    "failure",
    "message",
    "ttft_ms",
    "ttfc_ms",
    "e2e_ms",
    "follow_latency_ms",
    "follow_tokens",
    "first_event_tokens",
    "follow_source",
    "output_tokens",
    "output_source",
    "prompt_tokens",
    "cached_tokens",
    "total_tokens",
    "usage_completion_tokens",
    "tpot_ms",
    "token_events",
    "max_tokens",
    "finish_reason",
    "queue_delay_ms",
    "warmup",
    "turn",
    "truncated",
    "server_timing",
    "trace_id",
    "span_id",
    "session_id",
    "usage_clamped",
    "cancelled",
    "items",
)


class OutputError(Exception):
    """An output file could not be written; the message is one line naming it."""

    def __init__(self, what: str, path: str, exc: OSError | str) -> None:
        why = exc if isinstance(exc, str) else exc.strerror or str(exc)
        super().__init__(f"cannot write the {what} {path}: {why}")


# Paths that name this process's standard streams: streamed to whatever they point at (a
# terminal, a pipe, or the file the shell redirected to), never replaced.
_STREAM_PREFIXES = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/")
_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


class OutputFile:
    """One output being written: bytes go to a fresh temporary file in the target's folder
    (``mkstemp``: ``O_EXCL``, an unpredictable name, mode 0600 until done), which
    :meth:`commit` renames over the target, so a reader never sees half a file and nothing
    planted in the folder is written through. The target must be missing or a regular file
    (its permissions are kept); a character device or a FIFO, or a standard stream
    (``/dev/stdout``), is opened and streamed to instead (appending, never truncated).
    Anything else (a symbolic link, a directory, a block device) is refused: OutputError.
    """

    def __init__(self, path: str, what: str) -> None:
        self.path, self.what = path, what
        self.tmp: str | None = None
        try:
            self.f: IO[bytes] = self._open()
        except OSError as exc:
            raise OutputError(what, path, exc) from None

    def _open(self) -> IO[bytes]:
        path = self.path
        try:
            old: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            old = None
        if old is None or stat.S_ISREG(old.st_mode):
            make_folder(path)
            folder, name = os.path.split(os.path.abspath(path))
            fd, self.tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            os.fchmod(fd, stat.S_IMODE(old.st_mode) if old is not None else _default_mode())
            return os.fdopen(fd, "wb", buffering=1 << 16)
        target = os.stat(path)  # follows the link: /dev/stdout -> /proc/self/fd/1 -> a pipe
        stream = stat.S_ISCHR(target.st_mode) or stat.S_ISFIFO(target.st_mode)
        if stream or os.path.abspath(path).startswith(_STREAM_PREFIXES):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY)
            return os.fdopen(fd, "wb", buffering=1 << 16)
        raise OutputError(self.what, path, f"{_kind(old.st_mode)}, not a regular file: "
                          "refusing to replace it")  # fmt: skip

    def write(self, data: bytes) -> None:
        self.f.write(data)

    def commit(self) -> None:
        """Flush, close and put the file in place; OutputError (temporary file removed)."""
        try:
            self.f.close()
            if self.tmp is not None:
                os.replace(self.tmp, self.path)
                self.tmp = None
        except OSError as exc:
            self.discard()
            raise OutputError(self.what, self.path, exc) from None

    def discard(self) -> None:
        """Close and remove the temporary file; the target is left as it was. Never raises."""
        with contextlib.suppress(OSError):
            self.f.close()
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = None


def _default_mode() -> int:
    """What ``open(path, "w")`` would give a new file: 0666 less the umask."""
    umask = os.umask(0o022)  # the only way to read it; set back at once
    os.umask(umask)
    return 0o666 & ~umask


def make_folder(path: str) -> None:
    """Create the folder of ``path`` if it is missing (a file in its place fails later, when
    ``path`` is opened, with the truer "Not a directory")."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.lexists(folder):
        os.makedirs(folder, exist_ok=True)


def write_bytes(path: str, data: bytes, what: str) -> None:
    """Write one output file whole, through :class:`OutputFile`; OutputError on failure."""
    out = OutputFile(path, what)
    try:
        out.write(data)
    except OSError as exc:
        out.discard()
        raise OutputError(what, path, exc) from None
    out.commit()


def write_json(path: str, data: dict[str, Any], what: str = "summary JSON") -> None:
    """Write the JSON atomically (a reader never sees half a file); OutputError on failure."""
    write_bytes(path, dumps(data, indent=True) + b"\n", what)


def dumps(data: Any, indent: bool = False) -> bytes:
    """orjson, or the standard library for what orjson refuses (an int past 64 bits), so no
    value a server sent can lose an output."""
    try:
        return orjson.dumps(data, option=(orjson.OPT_INDENT_2 if indent else 0)
                            | orjson.OPT_NON_STR_KEYS)  # fmt: skip
    except orjson.JSONEncodeError:
        text = json.dumps(data, indent=2 if indent else None, default=str, allow_nan=False)
        return text.encode()


class RecordsWriter:
    """One JSON line per finished request, appended as the test runs (buffered, not held).

    Written through :class:`OutputFile`: the file appears, whole, when the test stops.
    Never raises: the first write error is kept in :attr:`error` and writing stops, so a
    full disk or a bad path cannot fail a request or stop the test.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines = 0
        self.error: OutputError | None = None
        self._f: OutputFile | None = None
        try:
            self._f = OutputFile(path, "records file")
        except OutputError as exc:
            self.error = exc

    def write(self, r: RequestResult, worker: str | None = None) -> None:
        if self._f is None:
            return
        row: dict[str, Any] = {"start_wall": r.start_wall}
        for name in _RECORD_FIELDS:
            row[name] = getattr(r, name)
        row["worker"] = worker
        try:
            self._f.write(dumps(row) + b"\n")
        except OSError as exc:
            self._fail(exc)
            return
        self.lines += 1

    def close(self) -> OutputError | None:
        """Flush and close; returns the first error, if any."""
        if self._f is not None:
            f, self._f = self._f, None
            try:
                f.commit()
            except OutputError as exc:
                self.error = self.error or exc
        return self.error

    def _fail(self, exc: OSError) -> None:
        self.error = self.error or OutputError("records file", self.path, exc)
        f, self._f = self._f, None
        if f is not None:
            f.discard()  # the buffered rest fails again: already said
