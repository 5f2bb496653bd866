"""Counting finished requests off the read path: one low-priority greenlet, fed by the users.

Counting a request (tokenizer, aggregation, Locust events, records file) must not delay other
users' pending reads: a user hands its record over and goes on; the greenlet counts one
record each time the event loop has no I/O pending (or after ``max_wait_s``, so a loop that is
never idle still counts). Past ``backlog`` waiting records, or ``backlog_tokens`` tokens held
by them (a record keeps each token's text and time until counted: long answers would make a
count bound alone hold gigabytes), a user counts them itself, so memory stays bounded;
:meth:`Accounting.flush` counts the rest before the summary.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
from gevent import get_hub
from gevent.event import Event
from gevent.hub import Waiter

from ..record import RequestRecord

__all__ = ["Accounting", "when_idle"]

log = logging.getLogger("llm_users")

Complete = Callable[[RequestRecord, int], Any]


def when_idle(max_wait_s: float) -> None:
    """Wait until the event loop has no I/O or timers pending, or at most ``max_wait_s``."""
    hub = get_hub()
    loop = hub.loop
    waiter: Waiter = Waiter(hub)
    idle = loop.idle()
    timer = loop.timer(max_wait_s)
    try:
        idle.start(waiter.switch, None)
        timer.start(waiter.switch, None)
        waiter.get()
    finally:
        idle.stop()
        timer.stop()
        idle.close()
        timer.close()


class Accounting:
    """``submit(record, step)`` from a user; ``complete(record, step)`` counts one."""

    def __init__(
        self,
        complete: Complete,
        backlog: int = 1024,
        max_wait_s: float = 0.1,
        backlog_tokens: int = 200_000,  # about 20 MB of texts and times
    ) -> None:
        self.complete = complete
        self.backlog = backlog
        self.backlog_tokens = backlog_tokens
        self.max_wait_s = max_wait_s
        self._queue: deque[tuple[RequestRecord, int, int]] = deque()  # record, step, tokens
        self.tokens = 0  # tokens held by the waiting records
        self._ready = Event()
        self._greenlet: gevent.Greenlet | None = None
        self.deferred = 0  # records counted by the greenlet (the others: inline)
        self._busy = False  # the greenlet is counting one (a count may yield: never kill it then)

    @property
    def running(self) -> bool:
        return self._greenlet is not None

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Count what is waiting, then stop the greenlet (records after this count inline)."""
        g, self._greenlet = self._greenlet, None
        if g is not None:
            if self._busy:
                g.join()  # it finishes the record it is counting, then sees the stop
            g.kill(block=True)
        self.flush()

    def submit(self, rec: RequestRecord, step: int = 0) -> None:
        if self._greenlet is None:
            self.complete(rec, step)
            return
        queue = self._queue
        # A stream's tokens; a whole response's text (one piece) at ~4 characters a token.
        n = len(rec.token_times) or sum(map(len, rec.texts)) // 4
        queue.append((rec, step, n))
        self.tokens += n
        # The loop is never idle: count the oldest here.
        while len(queue) > self.backlog or (self.tokens > self.backlog_tokens and queue):
            self._count_oldest()
        self._ready.set()

    def _count_oldest(self) -> None:
        rec, step, n = self._queue.popleft()
        self.tokens -= n
        self.complete(rec, step)

    def flush(self) -> None:
        """Count every waiting record now (test stop: before the summary)."""
        queue = self._queue
        while queue:
            self._count_oldest()

    def _run(self) -> None:
        queue = self._queue
        me = gevent.getcurrent()
        while self._greenlet is me:
            if not queue:
                self._ready.clear()
                self._ready.wait()
                continue
            when_idle(self.max_wait_s)
            if queue and self._greenlet is me:
                self._busy = True
                try:
                    self._count_oldest()
                except Exception:  # a listener's bug: say so, and keep counting the others
                    log.exception("llm-users: counting a finished request failed")
                finally:
                    self._busy = False
                self.deferred += 1
