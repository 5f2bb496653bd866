"""Writers of machine-readable output: the JSON summary and the per-request records file.

A file that cannot be written is an :class:`OutputError`: one line naming the file and why.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import orjson

from ..measure.per_request import RequestResult

__all__ = ["OutputError", "RecordsWriter", "make_folder", "write_json"]

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
    "cancelled",
    "items",
)


class OutputError(Exception):
    """An output file could not be written; the message is one line naming it."""

    def __init__(self, what: str, path: str, exc: OSError) -> None:
        super().__init__(f"cannot write the {what} {path}: {exc.strerror or exc}")


def make_folder(path: str) -> None:
    """Create the folder of ``path`` if it is missing (a file in its place fails later, when
    ``path`` is opened, with the truer "Not a directory")."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.lexists(folder):
        os.makedirs(folder, exist_ok=True)


def write_json(path: str, data: dict[str, Any], what: str = "summary JSON") -> None:
    """Write atomically (a reader never sees half a file); :class:`OutputError` on failure."""
    tmp = f"{path}.tmp"
    try:
        make_folder(path)
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
            f.write(b"\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(what, path, exc) from None


class RecordsWriter:
    """One JSON line per finished request, appended as the test runs (buffered, not held).

    Never raises: the first write error is kept in :attr:`error` and writing stops, so a
    full disk or a bad path cannot fail a request or stop the test.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines = 0
        self.error: OutputError | None = None
        self._f: Any = None
        try:
            make_folder(path)
            self._f = open(path, "wb", buffering=1 << 16)  # noqa: SIM115 (closed at test stop)
        except OSError as exc:
            self.error = OutputError("records file", path, exc)

    def write(self, r: RequestResult, worker: str | None = None) -> None:
        if self._f is None:
            return
        row: dict[str, Any] = {"start_wall": r.start_wall}
        for name in _RECORD_FIELDS:
            row[name] = getattr(r, name)
        row["worker"] = worker
        try:
            self._f.write(orjson.dumps(row) + b"\n")
        except OSError as exc:
            self._fail(exc)
            return
        self.lines += 1

    def close(self) -> OutputError | None:
        """Flush and close; returns the first error, if any."""
        if self._f is not None:
            try:
                self._f.close()
            except OSError as exc:
                self._fail(exc)
            self._f = None
        return self.error

    def _fail(self, exc: OSError) -> None:
        self.error = self.error or OutputError("records file", self.path, exc)
        f, self._f = self._f, None
        with contextlib.suppress(OSError):
            f.close()  # the buffered rest fails again: already said
