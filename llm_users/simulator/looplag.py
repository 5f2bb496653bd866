"""How late the simulator's event loop runs a timer: the uncertainty of its own stamps.

``received_at`` (arrival.py) and every write's time are taken when the loop gets round to
them; on a busy machine the OS may keep the process off the CPU for milliseconds, as it may
the load generator. Whoever compares the simulator's stamps with a client's adds this lag,
as the client's own (``llm_users/looplag.py``). ``/sim/stats`` gives it; ``/sim/reset``
starts it afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from time import perf_counter
from typing import Any

from ..measure.histogram import Histogram

__all__ = ["LoopLag"]


class LoopLag:
    """Sleeps ``interval_s`` in a loop and records how much later than asked it woke up."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.hist = Histogram()
        self._task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.hist = Histogram()

    def stats(self) -> dict[str, Any]:
        """count, mean, percentiles and max of the lag, in ms, since start or reset."""
        return self.hist.summary()

    async def start(self, _app: Any = None) -> None:  # (an aiohttp on_startup hook)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, _app: Any = None) -> None:  # (an aiohttp on_cleanup hook)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        interval, sleep, perf = self.interval_s, asyncio.sleep, perf_counter
        while True:
            t0 = perf()
            await sleep(interval)
            self.hist.record((perf() - t0 - interval) * 1000.0)
