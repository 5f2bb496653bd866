"""Kernel receive timestamps: the clock conversion (offset, drift, steps), the client's use of
them through the connection seam, the fallbacks (no SO_TIMESTAMPNS, TLS), and which segment's
time the kernel gives for a read that returns several."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import threading
import time
from typing import Any

import pytest

import llm_users.plugin.context as context_mod
from llm_users.errors import ConfigError
from llm_users.plugin.context import _clock
from llm_users.role import Role
from llm_users.wire.client import ClientConfig, LLMClient
from llm_users.wire.endpoints import CHAT
from llm_users.wire.http import Connection, Origin
from llm_users.wire.kclock import KernelClock, enable_timestamps, kernel_supported, sample_offset

from ..streams import vllm_chat_stream
from .test_client import FakeConnection, chat_body, chunked, head

HTTP = Origin.parse("http://127.0.0.1:9")
HTTPS = Origin.parse("https://127.0.0.1:9")


class FakeClocks:
    """perf advances ``tick`` per read; real = ``base + perf * (1 + drift)`` (+ ``step``)."""

    def __init__(self, base: float = 1.7e9, drift: float = 0.0, tick: float = 50e-9) -> None:
        self.t = 100.0
        self.base, self.drift, self.tick, self.step = base, drift, tick, 0.0
        self.slow = 0  # the next `slow` perf reads take 10 us (a preempted bracket)

    def perf(self) -> float:
        self.t += self.tick if not self.slow else 10e-6
        self.slow = max(0, self.slow - 1)
        return self.t

    def real_at(self, t: float) -> float:
        return self.base + t * (1 + self.drift) + self.step

    def real(self) -> float:
        return self.real_at(self.t)


def test_sample_offset_keeps_the_narrowest_bracket() -> None:
    c = FakeClocks()
    c.slow = 10  # the first brackets are wide (preempted): they must not be chosen
    offset, half, at = sample_offset(c.perf, c.real, samples=20)
    assert half == pytest.approx(25e-9, rel=1e-3)  # half of one tick
    assert abs(offset - (c.real_at(at) - at)) <= half  # the real offset, within the bracket


def test_conversion_is_exact_within_its_uncertainty() -> None:
    c = FakeClocks()
    clock = KernelClock(c.perf, c.real)
    arrived = c.t + 0.003
    c.t += 0.010  # read 7 ms after the segment arrived
    got = clock.to_perf(c.real_at(arrived), now=c.t, floor=c.t - 1.0)
    assert abs(got - arrived) <= clock.offset.uncertainty + 1e-6
    assert clock.uncertainty_us == pytest.approx(0.025, rel=1e-2)
    assert clock.epoch == 0 and clock.steps == 0


def test_drift_is_followed_by_resampling() -> None:
    c = FakeClocks(drift=200e-6)  # 200 ppm: an NTP slew
    clock = KernelClock(c.perf, c.real, resample_s=1.0)
    c.t += 30.0  # without re-sampling the offset would be 6 ms off
    arrived = c.t - 0.001
    got = clock.to_perf(c.real_at(arrived), now=c.t, floor=c.t - 1.0)
    assert abs(got - arrived) < 1e-6  # re-sampled lazily: still exact
    assert clock.epoch == 0  # a slew is not a step


@pytest.mark.parametrize("step", [5.0, -5.0])
def test_a_clock_step_is_detected_and_starts_a_new_epoch(step: float) -> None:
    c = FakeClocks()
    clock = KernelClock(c.perf, c.real, resample_s=3600.0)
    start = c.t
    c.t += 0.050
    c.step = step  # the wall clock jumps between the offset's sample and this stamp
    arrived = c.t - 0.002
    got = clock.to_perf(c.real_at(arrived), now=c.t, floor=start)
    assert clock.epoch == 1 and clock.steps == 1
    assert abs(got - arrived) < 1e-6  # converted with the new offset, not the stale one


def test_a_step_inside_the_bounds_is_caught_at_the_next_resample() -> None:
    c = FakeClocks()
    clock = KernelClock(c.perf, c.real, resample_s=1.0)
    c.step = 0.005  # 5 ms: smaller than the read's lateness, not visible in one stamp
    c.t += 2.0  # the offset is re-sampled lazily (1 s): 5 ms is past 1 ms + 2 s of slew
    clock.to_perf(c.real_at(c.t - 0.010), now=c.t, floor=c.t - 1.0)
    assert clock.epoch == 1


# -- the client ----------------------------------------------------------------------------
class StampedConnection(FakeConnection):
    """Reads carry kernel stamps: each read's data "arrived" ``delays[i]`` s after the send,
    and is read ``late`` s after that (a busy loop)."""

    def __init__(self, reads: list[bytes], delays: list[float], clocks: Any, late: float):
        super().__init__(reads)
        self.kernel_stamps = True
        self.stamped = True
        self.delays, self.clocks, self.late = list(delays), clocks, late
        self.sent_at = 0.0
        self.arrivals: list[float] = []
        self.read_at: list[float] = []

    def send(self, data: bytes) -> None:
        self.sent_at = time.perf_counter()
        super().send(data)

    def recv(self, timeout: float | None) -> bytes:
        arrived = self.sent_at + self.delays.pop(0) if self.delays else time.perf_counter()
        while time.perf_counter() < arrived + self.late:
            pass
        self.arrivals.append(arrived)
        self.recv_real = self.clocks.real_at(arrived)
        data = super().recv(timeout)
        self.read_at.append(time.perf_counter())
        return data


class PerfClocks:
    """The real perf_counter; realtime = perf + 1.7e9 (+ ``step`` once set)."""

    def __init__(self) -> None:
        self.step = 0.0

    def real_at(self, t: float) -> float:
        return 1.7e9 + t + self.step

    def real(self) -> float:
        return self.real_at(time.perf_counter())


def _stream_reads() -> list[bytes]:
    events = vllm_chat_stream().split(b"\n\n")
    return [head(), *chunked(*(e + b"\n\n" for e in events if e))]


def _client(conn: FakeConnection, clock: KernelClock | None) -> LLMClient:
    cfg = ClientConfig(origin=HTTP, endpoint=CHAT, clock=clock)
    return LLMClient(cfg, connection=conn)


def test_kernel_stamps_time_the_reads_however_late_they_are_read() -> None:
    clocks = PerfClocks()
    reads = _stream_reads()
    delays = [0.001 * (i + 1) for i in range(len(reads))]
    conn = StampedConnection(reads, delays, clocks, late=0.002)
    rec = _client(conn, KernelClock(real=clocks.real)).request(chat_body())
    assert rec.ok and rec.timestamps == "kernel" and not rec.clock_step
    assert rec.headers_at == pytest.approx(conn.arrivals[0], abs=2e-6)
    arrivals = set(conn.arrivals)
    for t in rec.token_times:  # each token: its read's arrival, not the 2 ms later read
        assert min(abs(t - a) for a in arrivals) < 2e-6
    assert rec.end is not None and min(abs(rec.end - a) for a in arrivals) < 2e-6


def test_a_clock_step_mid_request_falls_back_to_user_stamps() -> None:
    clocks = PerfClocks()
    reads = _stream_reads()
    delays = [0.001 * (i + 1) for i in range(len(reads))]
    conn = StampedConnection(reads, delays, clocks, late=0.002)
    clock = KernelClock(real=clocks.real, resample_s=3600.0)
    client = _client(conn, clock)
    real_recv = conn.recv

    def recv_then_step(timeout: float | None) -> bytes:
        if len(conn.read_at) == 3:
            clocks.step = 3.0  # the wall clock jumps 3 s while the stream is read
        return real_recv(timeout)

    conn.recv = recv_then_step  # type: ignore[method-assign]
    rec = client.request(chat_body())
    assert rec.ok and clock.steps == 1
    assert rec.timestamps == "user" and rec.clock_step
    # Every stamp is a user-space one: after its read returned, never before the arrival.
    for t in rec.token_times:
        assert any(0 <= t - r < 0.001 for r in conn.read_at)
    assert rec.first_content_at in rec.token_times


def test_without_a_clock_or_a_stamped_socket_reads_are_user_stamped() -> None:
    clocks = PerfClocks()
    conn = StampedConnection(_stream_reads(), [], clocks, late=0.0)
    conn.stamped = False  # a socket on which SO_TIMESTAMPNS could not be set
    rec = _client(conn, KernelClock(real=clocks.real)).request(chat_body())
    assert rec.ok and rec.timestamps == "user"
    rec = _client(FakeConnection(_stream_reads()), None).request(chat_body())
    assert rec.ok and rec.timestamps == "user"


# -- fallbacks -----------------------------------------------------------------------------
def test_platforms_without_kernel_stamps() -> None:
    assert not kernel_supported("darwin") and not kernel_supported("win32")
    assert enable_timestamps(object()) is False  # no recvmsg (an SSL socket has none)

    class Refuses:
        def recvmsg(self) -> None: ...

        def setsockopt(self, *_a: Any) -> None:
            raise OSError(92, "Protocol not available")

    assert enable_timestamps(Refuses()) is False


def test_tls_connections_never_ask_for_kernel_stamps() -> None:
    assert Connection(HTTPS, None, 1.0, kernel_stamps=True).kernel_stamps is False
    assert Connection(HTTP, None, 1.0, kernel_stamps=True).kernel_stamps is True


def test_timestamps_option_resolves_per_platform_and_scheme(monkeypatch: Any) -> None:
    local = Role()
    clock, what = _clock("auto", HTTPS, local, None)
    assert clock is None and what.startswith("user (TLS")
    with pytest.raises(ConfigError, match="--timestamps kernel: TLS"):
        _clock("kernel", HTTPS, local, None)
    assert _clock("user", HTTP, local, None) == (None, "user")
    assert _clock("auto", HTTP, Role("master"), None) == (None, "user")
    if kernel_supported():
        clock, what = _clock("auto", HTTP, local, None)
        assert isinstance(clock, KernelClock) and what == "kernel"
    monkeypatch.setattr(context_mod, "kernel_supported", lambda: False)
    clock, what = _clock("auto", HTTP, local, None)
    assert clock is None and what == "user (kernel receive timestamps need Linux)"
    with pytest.raises(ConfigError, match="need Linux"):
        _clock("kernel", HTTP, local, None)


def _queued(sock: Any) -> int:
    """Bytes waiting in the socket's receive queue."""
    buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


# -- which segment a read's stamp belongs to -------------------------------------------------
@pytest.mark.skipif(not kernel_supported(), reason="kernel receive timestamps are Linux-only")
def test_a_read_of_several_segments_carries_the_newest_segments_time() -> None:
    """Two segments 20 ms apart, read once after both arrived: the stamp is the second's."""
    srv = socket.create_server(("127.0.0.1", 0))
    sent: dict[str, float] = {}
    done, both_sent = threading.Event(), threading.Event()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(b"a" * 100)
            sent["first"] = time.clock_gettime(time.CLOCK_REALTIME)
            time.sleep(0.02)
            sent["before_second"] = time.clock_gettime(time.CLOCK_REALTIME)
            conn.sendall(b"b" * 100)
            both_sent.set()
            done.wait(5)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    origin = Origin.parse(f"http://127.0.0.1:{srv.getsockname()[1]}")
    conn = Connection(origin, None, 5.0, kernel_stamps=True)
    conn.connect()
    try:
        assert conn.stamped
        assert both_sent.wait(5)
        sock: Any = conn.sock
        deadline = time.monotonic() + 5
        while _queued(sock) < 200 and time.monotonic() < deadline:  # both in the queue
            time.sleep(0.005)
        data = conn.recv(5.0)
        assert data == b"a" * 100 + b"b" * 100  # one read returned both
        assert conn.recv_real is not None
        assert conn.recv_real >= sent["before_second"] > sent["first"] + 0.015
    finally:
        done.set()
        conn.close()
        srv.close()
        th.join(5)


# -- what the summary says --------------------------------------------------------------------
def test_stamp_counts_merge_across_workers_and_name_the_source() -> None:
    from llm_users.measure.tally import Tally
    from llm_users.plugin.finish import timestamps_info

    a, b = Tally(), Tally()
    a.count_stamps("kernel", False, 0.2)
    a.count_stamps("kernel", True, 0.1)
    b.count_stamps("user", False, 0.0)
    master = Tally()
    master.merge(Tally.from_dict(a.to_dict()))  # as a worker's delta travels
    assert timestamps_info(master.stamps, "user") == {
        "source": "kernel",
        "offset_uncertainty_us": 0.2,
        "kernel_requests": 2,
        "user_requests": 0,
        "clock_steps": 1,
    }
    master.merge(Tally.from_dict(b.to_dict()))
    assert timestamps_info(master.stamps, "user")["source"] == "mixed"
    tls = timestamps_info(b.stamps, "user (TLS: an SSL socket gives no kernel receive timestamps)")
    assert tls["source"] == "user" and tls["offset_uncertainty_us"] is None
    assert tls["why_user"].startswith("TLS")
    assert timestamps_info(Tally().stamps, "kernel")["source"] == "kernel"  # nothing yet
