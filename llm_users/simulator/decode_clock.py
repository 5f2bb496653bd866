"""One decode clock for every stream (``decode_clock: global``), as a batching server's step.

Tick k is at ``origin + k * period``. Streams hand over their timed writes, each tagged with
the tick it belongs to; a single loop wakes at each tick and writes to every stream due, so
1,024 streams cost one timer per tick, not one sleep each.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

# Writes: (tick, bytes, tokens of each token-carrying event inside).
TickWrite = tuple[int, bytes, tuple[int, ...]]
Note = Callable[[dict[str, Any], float, tuple[int, ...]], None]


class _Entry:
    __slots__ = ("resp", "rec", "writes", "done", "eof")

    def __init__(self, resp: Any, rec: dict[str, Any], writes: list[TickWrite], eof: bool) -> None:
        self.resp = resp
        self.rec = rec
        self.writes = deque(writes)
        self.eof = eof
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class DecodeClock:
    """Ticks at ``origin + k * period()``; ``note`` records each token write."""

    def __init__(self, origin: float, period: Callable[[], float], note: Note) -> None:
        self.origin = origin
        self._period = period
        self._note = note
        self._entries: set[_Entry] = set()
        self._task: asyncio.Task[None] | None = None
        self.writes = 0
        self.late_sum = 0.0
        self.late_max = 0.0

    def first_tick(self, at: float) -> int:
        """The first tick at or after ``at``."""
        return max(0, math.ceil((at - self.origin) / self._period() - 1e-9))

    def tick_time(self, k: int) -> float:
        return self.origin + k * self._period()

    async def run(
        self, resp: Any, rec: dict[str, Any], writes: list[TickWrite], eof: bool = False
    ) -> None:
        """Write ``writes`` to ``resp`` on their ticks; returns when all are out (or raises the
        write's ``ConnectionError``). ``eof``: the last write also ends the body (the chunked
        terminator goes out with it, in the same send, as a server's handler ending its
        stream right after ``[DONE]``; not after the whole tick's pass over the other
        streams, which would stamp a client's merged read of both late)."""
        if not writes:
            return
        entry = _Entry(resp, rec, writes, eof)
        self._entries.add(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())
        try:
            await entry.done
        finally:
            self._entries.discard(entry)

    async def _loop(self) -> None:
        while self._entries:
            k = min(e.writes[0][0] for e in self._entries)
            delay = self.tick_time(k) - perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # Late by more than a tick: every write due by now goes in this pass.
            now = perf_counter()
            k = max(k, math.floor((now - self.origin) / self._period()))
            for entry in list(self._entries):
                await self._serve(entry, k)

    async def _serve(self, entry: _Entry, k: int) -> None:
        """Everything of ``entry`` due by tick ``k``, in one write (one send, not several)."""
        writes = entry.writes
        parts: list[bytes] = []
        tokens: list[int] = []
        first_tick = writes[0][0] if writes else k
        while writes and writes[0][0] <= k:
            _, data, events = writes.popleft()
            parts.append(data)
            tokens.extend(events)
        data = b"".join(parts)
        end = entry.eof and not writes
        if data or end:
            now = perf_counter()
            try:
                if end:
                    await entry.resp.write_eof(data)
                else:
                    await entry.resp.write(data)
            except ConnectionError as exc:
                self._entries.discard(entry)
                if not entry.done.done():
                    entry.done.set_exception(exc)
                return
            late = now - self.tick_time(first_tick)
            self.writes += 1
            self.late_sum += late
            self.late_max = max(self.late_max, late)
            if tokens:
                self._note(entry.rec, now, tuple(tokens))
        if not writes:
            self._entries.discard(entry)
            if not entry.done.done():
                entry.done.set_result(None)

    def stats(self) -> dict[str, float]:
        """Writes made and how late they were, in ms, after their tick."""
        mean = self.late_sum / self.writes if self.writes else 0.0
        return {
            "origin": self.origin,
            "writes": self.writes,
            "late_mean_ms": mean * 1000.0,
            "late_max_ms": self.late_max * 1000.0,
        }
