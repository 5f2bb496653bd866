"""The simulator's garbage collector: its pauses would read as the server's latency.

Measured in a 512-stream run on one core: full collections of 56-87 ms, every second or two,
with every stream's writes waiting (its first-token writes were 54 ms late at p99). Each
in-flight stream holds hundreds of tracked objects (its plan, its writes, aiohttp's request
and response), so the full pass is long exactly while the load is high.

So: start-up's objects are frozen (never scanned again), automatic full collections are
made rare, and a full collection runs where nothing is timed: at ``/sim/reset`` (between
runs) and at start-up. Young objects are still collected as usual (those passes are short).
"""

from __future__ import annotations

import gc

__all__ = ["settle"]

FULL_EVERY = 1000  # first-generation collections per automatic full one (Python's: 10)


def settle() -> None:
    """Collect everything now, freeze what survives, and make automatic full passes rare."""
    gc.collect()
    gc.freeze()  # what survives start-up is never scanned again
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)
