"""One poller per process reads every ready streamed response, then hands each its bytes.

A batching server writes every stream's token in the same decode step, so every socket
becomes readable at once. With each user waiting on its own socket, every read costs a
greenlet switch, a watcher and a timer (``python -m bench.wakeups``: 16.8 us per read for
512 sockets on one clock, against 5.5 us read from one epoll), and a socket's read waits
for the parsing and bookkeeping of every stream handled before it. Here one greenlet waits
on one epoll descriptor and, at each wake-up, first READS every ready socket (each read
stamped: the kernel's arrival time, and the clock right after it), then lets each stream
parse what it got. The users sleep until their stream ends or their deadline passes.

Bounded: at most ``max_events`` sockets and ``max_bytes`` per round (the rest stay ready
for the next); between two streams' parsing the poller yields a turn of the loop once it
has worked ``max_busy_s``. Plain TCP only (:attr:`~llm_users.wire.http.Connection.pollable`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import gevent
from gevent import get_hub, monkey
from gevent import sleep as _gsleep
from gevent.hub import Waiter
from gevent.socket import wait as _wait

__all__ = ["PolledConnection", "Poller", "Stream"]

_perf = time.perf_counter
_TURN = 1e-6  # a timer due at the loop's next turn
try:  # gevent's monkey-patching removes epoll from select; the original never blocks here
    _epoll: Any = monkey.get_original("select", "epoll")
    _EPOLLIN: int = monkey.get_original("select", "EPOLLIN")
except AttributeError:  # not Linux
    _epoll = None
    _EPOLLIN = 1


class Stream(Protocol):
    """What the poller needs of a stream being read (the client's reader)."""

    def read(self, raw: bytes, real: float | None, now: float) -> bool:
        """Handle one read (``real``: the kernel's stamp or None; ``now``: the clock right
        after the read). True once the stream is over."""
        ...


class PolledConnection(Protocol):
    """What the poller needs of a connection (a plain-TCP :class:`.http.Connection`)."""

    recv_real: float | None  # the kernel's stamp of the last read, or None

    def fileno(self) -> int: ...

    def read_ready(self) -> bytes: ...


class _Entry:
    __slots__ = ("conn", "stream", "waiter", "error", "over")

    def __init__(self, conn: PolledConnection, stream: Stream) -> None:
        self.conn = conn
        self.stream = stream
        self.waiter: Waiter[Any] = Waiter()
        self.error: BaseException | None = None
        self.over = False


class Poller:
    """Reads the streams users hand it (:meth:`follow`) from one greenlet."""

    def __init__(
        self, max_events: int = 512, max_bytes: int = 8 << 20, max_busy_s: float = 0.002
    ) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_busy_s = max_busy_s
        self._entries: dict[int, _Entry] = {}
        self._epoll: Any = None
        self._watcher: Any = None
        self._pid = 0
        self._greenlet: gevent.Greenlet[Any, Any] | None = None
        self.rounds = 0  # wake-ups that read something
        self.reads = 0

    @staticmethod
    def available() -> bool:
        return _epoll is not None

    def follow(self, conn: PolledConnection, stream: Stream, deadline: Callable[[], float]) -> None:
        """Block this user until ``stream`` says it is over; raise what its reading raised,
        or TimeoutError once ``deadline()`` (re-read at each wake-up) has passed."""
        fd = conn.fileno()
        entry = _Entry(conn, stream)
        self._add(fd, entry)
        try:
            while not entry.over:
                remaining = deadline() - _perf()
                if remaining <= 0:
                    raise TimeoutError("deadline passed")
                with gevent.Timeout(remaining, False):
                    entry.waiter.get()
            error, entry.error = entry.error, None
            if error is not None:
                try:
                    raise error
                finally:  # no cycle error -> traceback -> this frame -> error: a failed
                    error = None  # stream's buffers are freed now, not by a full collection
        finally:
            entry.over = True  # read no more for it, even from a round already under way
            self._remove(fd, entry)

    # -- registration --------------------------------------------------------------------
    def _add(self, fd: int, entry: _Entry) -> None:
        if self._epoll is None or self._pid != os.getpid():  # first use, or a forked child
            self._epoll = _epoll()
            self._watcher = get_hub().loop.io(self._epoll.fileno(), 1)
            self._pid = os.getpid()
            self._greenlet = None
        self._entries[fd] = entry
        try:
            self._epoll.register(fd, _EPOLLIN)
        except FileExistsError:  # a closed descriptor's number, reused
            self._epoll.modify(fd, _EPOLLIN)
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _remove(self, fd: int, entry: _Entry) -> None:
        if self._entries.get(fd) is entry:
            del self._entries[fd]
            with contextlib.suppress(OSError):  # closed: already out of the set
                self._epoll.unregister(fd)

    def _finish(self, fd: int, entry: _Entry, error: BaseException | None) -> None:
        entry.over = True
        entry.error = error
        self._remove(fd, entry)
        get_hub().loop.run_callback(entry.waiter.switch, None)

    # -- the poller's greenlet -------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._greenlet = None

    def _loop(self) -> None:
        entries, watcher, round_ = self._entries, self._watcher, self._round
        while entries:
            try:
                _wait(watcher, 1.0)  # a second without data: check that streams remain
            except TimeoutError:
                continue
            round_()  # (its own frame: nothing of a round stays referenced while waiting)

    def _round(self) -> None:
        entries = self._entries
        # Read everything first: no socket's read waits on another stream's parsing.
        batch = []
        size = 0
        for fd, _events in self._epoll.poll(0, self.max_events):
            entry = entries.get(fd)
            if entry is None or entry.over:
                continue
            try:
                data = entry.conn.read_ready()
            except BlockingIOError:
                continue
            except OSError as exc:  # a reset: the stream's own failure
                self._finish(fd, entry, exc)
                continue
            batch.append((fd, entry, data, entry.conn.recv_real, _perf()))
            size += len(data)
            if size >= self.max_bytes:
                break
        if not batch:
            return
        self.rounds += 1
        self.reads += len(batch)
        max_busy = self.max_busy_s
        started = _perf()
        for fd, entry, data, real, now in batch:
            if entry.over:  # its user's deadline passed meanwhile
                continue
            try:
                over = entry.stream.read(data, real, now)
            except Exception as exc:  # noqa: BLE001  (the user classifies it)
                self._finish(fd, entry, exc)
                continue
            if over:
                self._finish(fd, entry, None)
            if _perf() - started > max_busy:
                _gsleep(_TURN)  # let the loop run its timers and the other greenlets
                started = _perf()
