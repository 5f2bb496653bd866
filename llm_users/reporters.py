"""Writers of machine-readable output: the JSON summary and the per-request records file."""

from __future__ import annotations

import os
from typing import Any

import orjson

from .metrics import RequestResult

__all__ = ["RecordsWriter", "write_json"]

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
)


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write atomically (a reader never sees half a file)."""
    if folder := os.path.dirname(path):
        os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
        f.write(b"\n")
    os.replace(tmp, path)


class RecordsWriter:
    """One JSON line per finished request, appended as the test runs (buffered, not held)."""

    def __init__(self, path: str) -> None:
        if folder := os.path.dirname(path):
            os.makedirs(folder, exist_ok=True)
        self.path = path
        self._f = open(path, "wb", buffering=1 << 16)  # noqa: SIM115 (closed at test stop)
        self.lines = 0

    def write(self, r: RequestResult, worker: str | None = None) -> None:
        row: dict[str, Any] = {"start_wall": r.start_wall}
        for name in _RECORD_FIELDS:
            row[name] = getattr(r, name)
        row["worker"] = worker
        self._f.write(orjson.dumps(row) + b"\n")
        self.lines += 1

    def close(self) -> None:
        self._f.close()
