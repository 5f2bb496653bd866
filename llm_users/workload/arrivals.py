"""Load models beyond the closed loop: open-loop arrivals, and sweeps of users or rates.

Closed loop (the default, as the seed): ``-u`` users, each sending its next request as soon
as the last one ended. Open loop (``--request-rate``): requests are *due* at arrival times
of a Poisson (or constant) process; a free user takes the next due time and waits for it.
When every user is busy the next request starts late: that lateness is the queue delay,
reported on its own and added to latency "from the intended start".
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event

__all__ = ["ArrivalSchedule", "SweepController"]


class ArrivalSchedule:
    """Due times (``perf_counter`` seconds) of an arrival process at ``rate`` per second.

    Users call :meth:`take` in turn; it never yields, so under gevent each due time goes to
    exactly one user. Nothing is queued: a backlog is only a due time in the past.
    """

    def __init__(self, rate: float, kind: str = "poisson", seed: int | None = None) -> None:
        self.kind = kind
        self._rng = random.Random(seed)
        self.rate = rate
        self._next = time.perf_counter()
        self._changed = Event()  # set (then replaced) when the rate changes

    def set_rate(self, rate: float) -> None:
        """A new rate from now on. Users waiting on slots drawn at the old rate draw again."""
        self.rate = rate
        self._next = time.perf_counter()
        changed, self._changed = self._changed, Event()
        changed.set()

    def take(self) -> float:
        due = self._next
        if self.rate > 0:
            gap = self._rng.expovariate(self.rate) if self.kind == "poisson" else 1.0 / self.rate
            self._next = due + gap
        return due

    def wait(self) -> float:
        """Take the next due time and sleep until it; returns it (the intended start)."""
        while True:
            changed = self._changed
            due = self.take()
            delay = due - time.perf_counter()
            if delay <= 0 or not changed.wait(delay):
                return due


class SweepController:
    """Steps the run through ``values`` (user counts, or open-loop rates), one step at a time.

    ``apply(index, value)`` sets a step going (start users / broadcast a rate);
    ``finished(index)`` is polled and ends a step early (e.g. enough requests);
    ``done()`` is called after the last step. ``next_value(index)``, when given, chooses
    each step's value instead of ``values`` (None: no more steps).
    """

    POLL_S = 0.1  # how often a step's end is checked: a search's probes end this close

    def __init__(
        self,
        values: tuple[float, ...],
        step_time: float,
        apply: Callable[[int, float], None],
        finished: Callable[[int], bool],
        done: Callable[[], None],
        next_value: Callable[[int], float | None] | None = None,
    ) -> None:
        self.values = values
        self.step_time = step_time
        self._apply, self._finished, self._done = apply, finished, done
        # A search is a sweep whose next value depends on the last step's result.
        self._next = next_value or (lambda i: values[i] if i < len(values) else None)
        self.started_at: list[float] = []  # wall clock of each step's start
        self.ended_at: list[float] = []
        self._greenlet: Any = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        g, self._greenlet = self._greenlet, None
        if g is not None and g is not gevent.getcurrent():
            g.kill(block=False)
        if len(self.ended_at) < len(self.started_at):
            self.ended_at.append(time.time())

    def _run(self) -> None:
        i = 0
        while (value := self._next(i)) is not None:
            self.started_at.append(time.time())
            self._apply(i, value)
            deadline = time.monotonic() + self.step_time
            while time.monotonic() < deadline and not self._finished(i):
                gevent.sleep(self.POLL_S)
            self.ended_at.append(time.time())
            i += 1
        self._greenlet = None
        self._done()
