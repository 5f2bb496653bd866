"""The stream poller: every ready socket read (and stamped) before any stream parses, users
woken when their stream ends, errors and deadlines delivered to the right user, nothing kept."""

from __future__ import annotations

import gc
import socket
import time
import weakref
from typing import Any

import gevent
import pytest
from gevent import monkey

from llm_users.wire.http import Connection, Origin
from llm_users.wire.poller import Poller

_block = monkey.get_original("time", "sleep")  # holds the hub: sockets fill meanwhile

pytestmark = pytest.mark.skipif(not Poller.available(), reason="epoll is Linux-only")


class Pair:
    """A gevent-side connection and the raw server socket writing to it."""

    def __init__(self, srv: socket.socket, stamps: bool = False) -> None:
        origin = Origin.parse(f"http://127.0.0.1:{srv.getsockname()[1]}")
        self.conn = Connection(origin, None, 5.0, kernel_stamps=stamps)
        self.conn.connect()
        self.peer, _ = srv.accept()


@pytest.fixture
def server() -> Any:
    srv = socket.create_server(("127.0.0.1", 0), backlog=64)
    yield srv
    srv.close()


class Recorder:
    """A stream that keeps what it was given; over after ``until`` bytes (or on b"")."""

    def __init__(self, log: list[Any], until: int, fail: type[Exception] | None = None) -> None:
        self.log, self.until, self.fail = log, until, fail
        self.got = b""

    def read(self, raw: bytes, real: float | None, now: float) -> bool:
        self.log.append(("read", now, time.perf_counter()))  # read at, parsed at
        if self.fail is not None:
            raise self.fail(f"failed after {len(self.got)} bytes")  # a new one: no cycle
        self.got += raw
        return not raw or len(self.got) >= self.until


def test_every_ready_socket_is_read_before_any_stream_parses(server: socket.socket) -> None:
    pairs = [Pair(server) for _ in range(20)]
    log: list[Any] = []
    reads: list[float] = []
    poller = Poller()
    for p in pairs:  # wrap each connection's read to log when it happened
        real_read = p.conn.read_ready

        def logged(real_read: Any = real_read) -> bytes:
            reads.append(time.perf_counter())
            return real_read()

        p.conn.read_ready = logged  # type: ignore[method-assign]
    streams = [Recorder(log, 5) for _ in pairs]
    users = [
        gevent.spawn(poller.follow, p.conn, s, lambda: time.perf_counter() + 5)
        for p, s in zip(pairs, streams, strict=True)
    ]
    gevent.sleep(0.05)  # every user registered, the poller waiting
    for p in pairs:  # one "decode step": every socket readable at once
        p.peer.sendall(b"hello")
    _block(0.05)  # the hub does not run: all 20 are ready together
    gevent.joinall(users, timeout=5, raise_error=True)
    assert all(u.successful() for u in users)
    assert [s.got for s in streams] == [b"hello"] * 20
    assert poller.rounds == 1 and poller.reads == 20  # one wake-up read them all
    parsed = [t for _, _, t in log]
    assert max(reads) < min(parsed)  # all 20 reads came before the first stream parsed
    stamped = sorted(now for _, now, _ in log)  # each stream got the clock right after its read
    assert all(r <= t <= min(parsed) for t, r in zip(stamped, sorted(reads), strict=True))
    assert not poller._entries  # every finished stream left the set
    for p in pairs:
        p.peer.close()
        p.conn.close()


def test_a_reads_error_and_a_deadline_reach_their_own_user(server: socket.socket) -> None:
    good, bad, silent = Pair(server), Pair(server), Pair(server)
    poller = Poller()
    log: list[Any] = []
    s_good, s_bad, s_silent = Recorder(log, 3), Recorder(log, 3, fail=ValueError), Recorder(log, 3)
    t0 = time.perf_counter()
    users = [
        gevent.spawn(poller.follow, good.conn, s_good, lambda: t0 + 5),
        gevent.spawn(poller.follow, bad.conn, s_bad, lambda: t0 + 5),
        gevent.spawn(poller.follow, silent.conn, s_silent, lambda: t0 + 0.2),
    ]
    gevent.sleep(0.02)
    good.peer.sendall(b"abc")
    bad.peer.sendall(b"abc")
    gevent.joinall(users, timeout=5)
    assert users[0].successful() and s_good.got == b"abc"
    assert isinstance(users[1].exception, ValueError)
    assert isinstance(users[2].exception, TimeoutError)
    assert 0.2 <= time.perf_counter() - t0 < 2.0
    assert not poller._entries
    # the timed-out socket is out of the epoll set: data arriving later reads nothing
    silent.peer.sendall(b"late")
    gevent.sleep(0.05)
    assert s_silent.got == b""
    for p in (good, bad, silent):
        p.peer.close()
        p.conn.close()


def test_a_closed_peer_ends_the_stream_with_an_empty_read(server: socket.socket) -> None:
    p = Pair(server)
    poller = Poller()
    s = Recorder([], 1_000_000)
    user = gevent.spawn(poller.follow, p.conn, s, lambda: time.perf_counter() + 5)
    gevent.sleep(0.02)
    p.peer.sendall(b"partial")
    p.peer.close()
    user.join(5)
    assert user.successful() and s.got == b"partial"
    p.conn.close()


def test_a_failed_stream_is_freed_without_a_full_collection(server: socket.socket) -> None:
    """The error travels from the poller to the user; no reference cycle may keep the
    stream (and its buffers, up to the event bound) alive until a full collection, which
    the plugin avoids mid-test."""
    p = Pair(server)
    poller = Poller()
    refs: list[weakref.ref[Recorder]] = []
    caught: list[type[BaseException]] = []

    def user() -> None:  # as the client does: catch, classify, drop
        s = Recorder([], 10, fail=RuntimeError)
        s.got = bytearray(1 << 20)  # type: ignore[assignment]  # stands for a held buffer
        refs.append(weakref.ref(s))
        try:
            poller.follow(p.conn, s, lambda: time.perf_counter() + 5)
        except RuntimeError as exc:
            caught.append(type(exc))

    g = gevent.spawn(user)
    gevent.sleep(0.02)
    gc.disable()
    try:
        p.peer.sendall(b"x")
        g.join(5)
        assert caught == [RuntimeError]
        p.peer.sendall(b"y")  # the poller's next round drops its last batch
        gevent.sleep(0.02)
        assert refs[0]() is None, gc.get_referrers(refs[0]())
    finally:
        gc.enable()
        p.peer.close()
        p.conn.close()


def test_kernel_stamps_are_taken_at_the_read(server: socket.socket) -> None:
    from llm_users.wire.kclock import kernel_supported

    if not kernel_supported():
        pytest.skip("kernel receive timestamps are Linux-only")
    p = Pair(server, stamps=True)
    assert p.conn.stamped
    got: list[Any] = []

    class Stamps:
        def read(self, raw: bytes, real: float | None, now: float) -> bool:
            got.append((real, time.time()))
            return True

    poller = Poller()
    user = gevent.spawn(poller.follow, p.conn, Stamps(), lambda: time.perf_counter() + 5)
    gevent.sleep(0.02)
    sent = time.time()
    p.peer.sendall(b"x")
    _block(0.03)  # the data waits 30 ms in the socket before the hub runs
    user.join(5)
    assert user.successful()
    real, handled = got[0]
    assert real is not None and sent - 0.005 <= real <= sent + 0.010  # its arrival ...
    assert handled - real >= 0.025  # ... not when it was read
    p.peer.close()
    p.conn.close()
