"""Self-calibration: how late the gevent loop wakes a sleeping greenlet.

Every timestamp the client takes is late by at most the time the loop was busy elsewhere;
this monitor samples that lateness so the summary can state the timing uncertainty.
"""

from __future__ import annotations

import time

import gevent

from ..measure.histogram import Histogram

__all__ = ["LoopLagMonitor"]


class LoopLagMonitor:
    """Sleeps ``interval_s`` in a loop and records how much later than asked it woke up."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.hist = Histogram()
        self._greenlet: gevent.Greenlet | None = None
        self._frozen = False
        self._cpu0: tuple[float, float] | None = None  # (process CPU s, wall s) at start
        self._cpu_share: float | None = None

    def start(self) -> None:
        self._frozen = False
        self._cpu0, self._cpu_share = (time.process_time(), time.perf_counter()), None
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def freeze(self) -> None:
        """Stop recording now: the sample in flight is dropped when it wakes.

        Called as the test starts stopping: Locust's ``Runner.stop`` blocks the loop for
        tens of ms (it calls ``inspect.stack()``), which is not part of the measured period.
        """
        self._frozen = True
        if self._cpu0 is not None and self._cpu_share is None:
            cpu0, wall0 = self._cpu0
            wall = time.perf_counter() - wall0
            self._cpu_share = (time.process_time() - cpu0) / wall if wall > 0 else None

    def cpu_share(self) -> float | None:
        """This process's CPU time over the test's wall time (1.0: one core all the time),
        from start to the first freeze: what tells a busy generator from a busy machine."""
        return self._cpu_share

    def stop(self) -> None:
        self.freeze()
        g, self._greenlet = self._greenlet, None
        if g is not None:
            g.kill(block=False)

    def p99_s(self, other: Histogram | None = None) -> float | None:
        """p99 lag so far, in seconds: of this monitor's samples, or of ``other`` (a master's
        merged worker lag); None before any sample."""
        h = self.hist if other is None else other
        p = h.percentile(99) if h.count else None
        return p / 1000.0 if p is not None else None

    def take(self) -> Histogram:
        """The samples since the last take (for periodic reports)."""
        h, self.hist = self.hist, Histogram()
        return h

    def _run(self) -> None:
        perf, sleep, interval = time.perf_counter, gevent.sleep, self.interval_s
        while True:
            t0 = perf()
            sleep(interval)
            if not self._frozen:
                self.hist.record((perf() - t0 - interval) * 1000.0)
