"""Trace replay (Mooncake format): each request at its recorded time, its prompt from hash ids.

A JSONL row is ``{"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [...]}``.
The prompt is ``input_length`` tokens exactly, in blocks of ``block_tokens``: block j is the
content of ``hash_ids[j]`` (the same in every request and every process for the same hash id
and seed), the last block possibly partial; blocks past the hash ids are unique tokens.
``output_length`` is the request's ``max_tokens``.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

import gevent
import orjson

from ..errors import ConfigError
from .datasets import MAX_TOKENS
from .exact import ExactText
from .files import bounded_lines
from .prompts import Prompt, PromptsExhausted

__all__ = [
    "MAX_SPAN_MS",
    "MAX_TIMESTAMP_MS",
    "TracePrompts",
    "TraceRow",
    "TraceSchedule",
    "read_trace",
]

# Timestamps are ms; absolute ones (Unix time in ms) stay below this until the year 2286, and
# float ms stay exact to well under a microsecond there.
MAX_TIMESTAMP_MS = 1e13
# A trace spanning more than 31 days is refused: it is almost surely in another unit (us or ns
# read as ms), and the test would wait that long for its rows (a 1e300 would wait forever).
MAX_SPAN_MS = 31 * 86_400_000


@dataclass(frozen=True)
class TraceRow:
    line: int
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]


def _count(path: str, line: int, row: dict[str, Any], key: str) -> int:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_TOKENS:
        raise ConfigError(f"{path}:{line}: {key!r} must be a whole number from 1 to "
                          f"{MAX_TOKENS:,}, got {v!r}")  # fmt: skip
    return v


def _row(path: str, line: int, raw: bytes) -> TraceRow:
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{line}: not valid JSON ({exc})") from None
    if not isinstance(row, dict):
        raise ConfigError(f"{path}:{line}: a row must be a JSON object")
    ts = row.get("timestamp")
    if ts is None:
        raise ConfigError(f"{path}:{line}: no 'timestamp' (ms)")
    number = isinstance(ts, int | float) and not isinstance(ts, bool)
    if not number or not math.isfinite(ts) or not 0 <= ts < MAX_TIMESTAMP_MS:
        raise ConfigError(f"{path}:{line}: 'timestamp' must be a number of ms from 0 to "
                          f"{MAX_TIMESTAMP_MS:g}, got {ts!r}")  # fmt: skip
    ids = row.get("hash_ids", [])
    if not isinstance(ids, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in ids
    ):
        raise ConfigError(f"{path}:{line}: 'hash_ids' must be a list of integers")
    return TraceRow(line, float(ts), _count(path, line, row, "input_length"),
                    _count(path, line, row, "output_length"), tuple(ids))  # fmt: skip


def read_trace(path: str, limit: int = 0) -> list[TraceRow]:
    """Every row (or the first ``limit``), checked: in time order, lengths >= 1."""
    rows: list[TraceRow] = []
    try:
        with open(path, "rb") as f:
            for line, raw in bounded_lines(f, path, "row"):
                if not raw.strip():
                    continue
                row = _row(path, line, raw)
                if rows and row.timestamp_ms < rows[-1].timestamp_ms:
                    raise ConfigError(
                        f"{path}:{line}: timestamp {row.timestamp_ms:g} is before the previous "
                        f"row's {rows[-1].timestamp_ms:g} (rows must be in time order)"
                    )
                if rows and row.timestamp_ms - rows[0].timestamp_ms > MAX_SPAN_MS:
                    raise ConfigError(
                        f"{path}:{line}: timestamp {row.timestamp_ms:g} ms is more than 31 days "
                        f"after the first row's {rows[0].timestamp_ms:g} (timestamps are ms: "
                        "us or ns?)"
                    )
                rows.append(row)
                if limit and len(rows) >= limit:
                    break
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the trace ({exc.strerror})") from None
    if not rows:
        raise ConfigError(f"{path}: empty trace: no rows")
    return rows


class TraceSchedule:
    """Due times (``perf_counter`` seconds) of a trace's rows, from the moment it is made.

    The interface of :class:`~llm_users.workload.arrivals.ArrivalSchedule`: users call
    :meth:`wait` in turn, each gets the next row's due time; the rate is the trace's own.
    """

    def __init__(self, offsets_s: list[float]) -> None:
        self._offsets = offsets_s
        self._pos = 0
        self.start = time.perf_counter()

    def set_rate(self, rate: float) -> None:
        """A trace keeps its own times."""

    def take(self) -> float:
        if self._pos >= len(self._offsets):
            return time.perf_counter()
        due = self.start + self._offsets[self._pos]
        self._pos += 1
        return due

    def wait(self) -> float:
        due = self.take()
        delay = due - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        return due


class TracePrompts:
    """This process's share of a trace: ``next()`` gives each row's prompt and max_tokens,
    in order, then raises :class:`~llm_users.workload.prompts.PromptsExhausted`.

    ``partition=(i, n)``: rows i, i+n, ... with their times kept from the trace's first row,
    so n workers together replay it with its own timing. Prompts are built now, before the
    test (the tokenizer checks each one): memory is this share's prompt text.
    """

    def __init__(self, rows: list[TraceRow], *, tokenizer_name: str, path: str = "trace",
                 block_tokens: int = 512, speed: float = 1.0, seed: int | None = None,
                 unique_seed: int | None = None,
                 partition: tuple[int, int] = (0, 1)) -> None:  # fmt: skip
        index, count = partition
        gen = ExactText(tokenizer_name)
        base = 0 if seed is None else seed  # the same blocks in every process
        t0 = rows[0].timestamp_ms
        blocks: dict[int, list[int]] = {}
        unique = random.Random(unique_seed)
        items: list[tuple[Prompt, int | None]] = []
        offsets: list[float] = []
        for row in rows[index::count]:
            ids: list[int] = []
            for j in range(math.ceil(row.input_length / block_tokens)):
                size = min(block_tokens, row.input_length - j * block_tokens)
                if j < len(row.hash_ids):
                    h = row.hash_ids[j]
                    block = blocks.get(h)
                    if block is None:
                        block = blocks[h] = gen.draw(random.Random(f"{base}/{h}"), block_tokens)
                    ids += block[:size]
                else:
                    ids += gen.draw(unique, size)
            text = gen.text(ids)
            if text is None:
                raise ConfigError(f"{path}:{row.line}: tokenizer {tokenizer_name!r} does not "
                                  f"give back this row's {row.input_length} tokens "
                                  "from their text")  # fmt: skip
            items.append((text, row.output_length))
            offsets.append((row.timestamp_ms - t0) / 1000.0 / speed)
        self.path, self.rows = path, len(rows)
        self._items, self._offsets, self._pos = items, offsets, 0

    def __len__(self) -> int:
        return len(self._items)

    def next(self) -> tuple[Prompt, int | None]:
        if self._pos >= len(self._items):
            raise PromptsExhausted(f"{self.path}: every row of this process's share was sent")
        item = self._items[self._pos]
        self._pos += 1
        return item

    def schedule(self) -> TraceSchedule:
        """A test starts: from the first row again, its times counted from now."""
        self._pos = 0
        return TraceSchedule(self._offsets)
