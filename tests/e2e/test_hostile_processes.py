"""Every hostile class as a real ``locust --headless`` process, under an address-space limit
and a hard timeout: peak RSS < 300 MB, loop lag p99 < 20 ms, the run ends on ``--run-time``
(or SIGTERM) within 5 s with a summary, and every answer the server gave is counted, with
the right kind.

The servers: the simulator's hostile modes (one simulator, reconfigured per test), and raw
gevent servers in this process (1xx heads, endless trailers, framing errors, an endless
header line, and hostile /metrics pages), each counting what it answered. ``--stop-timeout``
lets each user finish its request in flight at the end: nothing sent goes uncounted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import psutil
import pytest
from gevent import select
from gevent.server import StreamServer

from llm_users.simulator import SimulatorProcess
from tests.helpers import ROOT, bounded_child, locust_cmd

pytestmark = pytest.mark.e2e

HARD_TIMEOUT_S = 30.0  # (a run takes under 10 s; a regression may pin a core till then)
RSS_LIMIT_MB = 300
LAG_P99_MS = 20.0
END_WITHIN_S = 5.0
RUN_TIME_S = 2
USERS = 2

Respond = Callable[[socket.socket, bytes], bool]  # (socket, request head) -> keep it open?


# --- the locust process ----------------------------------------------------------------------


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    peak_rss_mb: float
    summary: dict[str, Any]
    ended_at: float  # time.time() when the process was seen gone
    signalled_at: float | None = None

    @property
    def run_time_started(self) -> float:
        """When Locust started its --run-time clock, from its own log line."""
        m = re.search(r"^\[([0-9-]+ [0-9:]+,[0-9]+)\] \S+ Run time limit set to", self.stderr, re.M)
        assert m, self.stderr[-3000:]
        return datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()

    @property
    def lag(self) -> dict[str, float]:
        return self.summary["client_loop_lag_ms"]


def run_locust(
    tmp_path: Path,
    host: str,
    *args: str,
    users: int = USERS,
    run_time_s: float | None = RUN_TIME_S,
    sigterm_when: Callable[[], bool] | None = None,
) -> Run:
    """``locust --headless`` against ``host``, its RSS sampled every 50 ms until it ends; with
    ``sigterm_when``, SIGTERM as soon as that returns True. Killed at the hard timeout."""
    out = tmp_path / "summary.json"
    cmd = locust_cmd(
        "--headless", "-u", str(users), "-r", str(users), "--host", host,
        "--summary-json", str(out), "--stop-timeout", "3", *args,
    )  # fmt: skip
    if run_time_s is not None:
        cmd += ["--run-time", f"{run_time_s:g}s"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with open(tmp_path / "stdout", "w+") as so, open(tmp_path / "stderr", "w+") as se:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=so, stderr=se,
            preexec_fn=bounded_child,
        )  # fmt: skip
        ps = psutil.Process(proc.pid)
        peak, signalled_at = 0, None
        deadline = time.monotonic() + HARD_TIMEOUT_S
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(psutil.Error):
                    peak = max(peak, ps.memory_info().rss)
                if signalled_at is None and sigterm_when is not None and sigterm_when():
                    proc.send_signal(signal.SIGTERM)
                    signalled_at = time.time()
                time.sleep(0.05)  # cooperative (gevent): this process's servers keep serving
            ended_at = time.time()
        finally:
            if proc.poll() is None:
                proc.kill()
        code = proc.wait(timeout=10)
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read(), se.read()
    assert time.monotonic() < deadline, f"killed at the hard timeout\n{stderr[-3000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    assert out.exists(), stderr[-3000:]
    summary = json.loads(out.read_text())
    return Run(code, stdout, stderr, peak / 2**20, summary, ended_at, signalled_at)


def check_bounded(run: Run) -> None:
    """Memory and loop lag bounded; a summary printed and written (run_locust read it)."""
    assert run.peak_rss_mb < RSS_LIMIT_MB, f"peak RSS {run.peak_rss_mb:.0f} MB"
    assert run.lag["p99"] < LAG_P99_MS, run.lag
    assert "LLM summary (" in run.stdout, run.stdout[-3000:]


def check_ended_on_run_time(run: Run, run_time_s: float = RUN_TIME_S) -> float:
    """The process ran its whole --run-time and was gone within 5 s of its end."""
    late_s = run.ended_at - (run.run_time_started + run_time_s)
    # (Locust's timer counts from gevent's loop time, cached since the loop last woke: when
    # start-up ran a while without yielding, the run ends that much early, ~0.1 s measured)
    assert -1.0 < late_s < END_WITHIN_S, late_s
    print(f"ended {late_s:.2f} s after --run-time; loop lag {run.lag}; {run.peak_rss_mb:.0f} MB")
    return late_s


def check_counts(s: dict[str, Any], answered: int, kind: str | None) -> None:
    """Every answer counted once, ok or as ``kind``."""
    assert answered >= USERS, answered  # the server was busy all along
    if kind is None:
        assert s["requests"] == answered and s["failures"] == 0, s["failure_examples"]
    else:
        assert s["failures_by_kind"] == {kind: answered} and s["requests"] == 0, s


# --- the simulator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(ttft_ms=1, itl_ms=1, output_tokens=5) as s:
        yield s


def reconfigure(sim: SimulatorProcess, **knobs: Any) -> None:
    base: dict[str, Any] = {"fault": None, "close_after_stream": False, "output_tokens": 5}
    sim.configure(**{**base, **knobs})
    sim.reset()


def settled(sim: SimulatorProcess) -> dict[str, Any]:
    """The simulator's stats once every request has been closed on its side."""
    deadline = time.monotonic() + 5
    stats = sim.stats()
    while stats["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = sim.stats()
    return stats


SIM_MODES = {  # fault -> the kind each of its answers is counted as (None: ok)
    "deep_json": "malformed_event",
    "deep_error": "http_500",
    "script_flood": "http_502",
    "endless_tokens": "oversized_response",
    "held_open": None,
}


@pytest.mark.parametrize(("fault", "kind"), list(SIM_MODES.items()), ids=list(SIM_MODES))
def test_simulator_hostile_modes(sim, tmp_path, fault, kind):
    reconfigure(sim, fault=fault)
    run = run_locust(tmp_path, sim.url, "--stream", "--max-failing-seconds", "0")
    check_bounded(run)
    check_ended_on_run_time(run)
    stats = settled(sim)
    answered = stats["by_fault"].get(fault, 0)
    assert stats["requests"] == answered, stats  # every completion request got the fault
    check_counts(run.summary, answered, kind)
    assert run.code == (0 if kind is None else 1), run.stderr[-2000:]


# --- raw servers ------------------------------------------------------------------------------


def read_request(sock: socket.socket) -> bytes | None:
    """One request's head (its body is read and dropped); None when the peer closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return None
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while m and len(body) < int(m[1]):
        more = sock.recv(65536)
        if not more:
            return None
        body += more
    return head


@dataclass
class RawServer:
    """A gevent server on 127.0.0.1 calling ``respond`` per request, counting the answers it
    began and timing each connection (accept to close, either side)."""

    respond: Respond
    answered: int = 0
    held_s: list[float] = field(default_factory=list)
    server: StreamServer | None = None

    def _handle(self, sock: socket.socket, _addr: Any) -> None:
        t0 = time.monotonic()
        try:
            while (head := read_request(sock)) is not None:
                self.answered += 1
                if not self.respond(sock, head):
                    break
        except OSError:
            pass  # the client gave up: what these servers are for
        finally:
            self.held_s.append(time.monotonic() - t0)

    def start(self) -> None:
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def raw() -> Iterator[Callable[[Respond], RawServer]]:
    servers: list[RawServer] = []

    def start(respond: Respond) -> RawServer:
        s = RawServer(respond)
        s.start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        assert s.server is not None
        s.server.stop(timeout=1)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
TOKEN = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
END = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def interim(sock: socket.socket, _head: bytes) -> bool:
    """Two 1xx heads, then, a moment later, the answer: one answer, kept alive."""
    sock.sendall(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
    )
    gevent.sleep(0.005)  # apart: a client taking a 1xx for the answer reads this one late
    sock.sendall(SSE_HEAD + chunk(TOKEN) + chunk(END) + b"0\r\n\r\n")
    return True


def endless_trailers(sock: socket.socket, _head: bytes) -> bool:
    """A token, the last chunk, then trailer lines for as long as they are read."""
    sock.sendall(SSE_HEAD + chunk(TOKEN) + b"0\r\n")
    lines = b"".join(b"X-Trailer-%d: %s\r\n" % (i, b"v" * 200) for i in range(256))
    while True:
        sock.sendall(lines)


BAD_FRAMING = [
    SSE_HEAD + chunk(TOKEN) + b"zz\r\nab\r\n",  # a chunk size that is not hex
    SSE_HEAD + chunk(TOKEN) + b"2\r\nabc\r\n",  # a chunk longer than its size
    b"garbage\r\n\r\n",  # no status line
]


def bad_framing(counter: list[int]) -> Respond:
    def respond(sock: socket.socket, _head: bytes) -> bool:
        counter[0] += 1
        sock.sendall(BAD_FRAMING[counter[0] % len(BAD_FRAMING)])
        gevent.sleep(0.01)  # (the client closes: a framing error leaves nothing to reuse)
        return True

    return respond


def endless_header_line(sock: socket.socket, _head: bytes) -> bool:
    sock.sendall(b"HTTP/1.1 200 OK\r\nX-Huge: ")
    piece = b"y" * 65536
    while True:
        sock.sendall(piece)


RAW_MODES: dict[str, tuple[Callable[[], Respond], str | None]] = {
    "interim_1xx": (lambda: interim, None),
    "endless_trailers": (lambda: endless_trailers, "oversized_response"),
    "framing_errors": (lambda: bad_framing([0]), "malformed_http"),
    "endless_header_line": (lambda: endless_header_line, "oversized_response"),
}


@pytest.mark.parametrize(("mode", "kind"), [(m, k) for m, (_, k) in RAW_MODES.items()],
                         ids=list(RAW_MODES))  # fmt: skip
def test_raw_hostile_servers(raw, tmp_path, mode, kind):
    server = raw(RAW_MODES[mode][0]())
    run = run_locust(
        tmp_path, server.url, "--stream", "--preflight", "off", "--max-failing-seconds", "0",
    )  # fmt: skip
    check_bounded(run)
    check_ended_on_run_time(run)
    check_counts(run.summary, server.answered, kind)
    assert run.code == (0 if kind is None else 1), run.stderr[-2000:]
    if mode == "framing_errors":  # each of the three framings was met
        assert server.answered >= len(BAD_FRAMING)


# --- the /metrics scraper ---------------------------------------------------------------------

PAGE = b"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 0\n"
GOOD_METRICS = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (
    len(PAGE),
    PAGE,
)


def metrics_after_a_good_probe(hostile: Respond) -> Respond:
    """The first GET (the check before the test) gets a good page; every later one, hostile."""
    seen = [0]

    def respond(sock: socket.socket, head: bytes) -> bool:
        seen[0] += 1
        if seen[0] == 1:
            sock.sendall(GOOD_METRICS)
            return False  # the scraper asks for Connection: close
        return hostile(sock, head)

    return respond


def drip(sock: socket.socket, _head: bytes) -> bool:
    """A good page, one byte a second, until the client closes."""
    for i in range(len(GOOD_METRICS)):
        sock.sendall(GOOD_METRICS[i : i + 1])
        if select.select([sock], [], [], 1.0)[0] and not sock.recv(1):
            break  # closed: the connection's time ends now, not at the next byte's EPIPE
    return False


SCRAPE_TIMEOUT_S = 2.0  # servermetrics' default fetch timeout (1 s interval)
METRICS_ATTACKS = {  # how each failed scrape is named, and how long it may hold its socket
    "endless_header_line": (endless_header_line, "response headers over 65536 bytes", 0.5),
    "drip": (drip, f"timeout after {SCRAPE_TIMEOUT_S:g} s", SCRAPE_TIMEOUT_S + 0.5),
}


@pytest.mark.parametrize("attack", list(METRICS_ATTACKS))
def test_a_hostile_metrics_page_fails_its_scrapes_and_nothing_else(sim, raw, tmp_path, attack):
    respond, why, hold_s = METRICS_ATTACKS[attack]
    reconfigure(sim)
    metrics = raw(metrics_after_a_good_probe(respond))
    url = metrics.url + "/metrics"
    run_time_s = 3
    run = run_locust(tmp_path, sim.url, "--stream", "--server-metrics", url, run_time_s=run_time_s)
    check_bounded(run)  # the users' loop kept its time
    check_ended_on_run_time(run, run_time_s)
    stats = settled(sim)
    check_counts(run.summary, stats["completed"], None)
    assert stats["requests"] == stats["completed"] and run.code == 0
    # Every scrape in the test failed, each bounded, and the summary says why.
    srv = run.summary["server"]
    assert srv["scrapes"] == 0 and srv["failed_scrapes"] >= 2, srv
    assert srv["not_available"] == srv["last_error"] and why in srv["not_available"], srv
    assert f"server metrics ({url}): " in run.stdout and why in run.stdout
    # (a scrape in progress at the end is stopped, not counted: at most one more)
    assert 0 <= metrics.answered - 1 - srv["failed_scrapes"] <= 1, (metrics.answered, srv)
    held = metrics.held_s[1:]  # (the check before the test was answered at once)
    assert max(held) < hold_s + run.lag["max"] / 1000, held
    print(f"{attack}: scrapes held {max(held):.3f} s max")


# --- SIGTERM ----------------------------------------------------------------------------------


def test_sigterm_against_a_held_body_and_an_endless_metrics_header_ends_with_a_summary(
    sim, raw, tmp_path
):
    reconfigure(sim, fault="held_open")
    metrics = raw(metrics_after_a_good_probe(endless_header_line))
    url = metrics.url + "/metrics"

    def under_attack() -> bool:  # users held, scrapes failing: now
        return metrics.answered >= 3 and sim.stats()["by_fault"].get("held_open", 0) >= 4

    run = run_locust(
        tmp_path, sim.url, "--stream", "--server-metrics", url,
        run_time_s=None, sigterm_when=under_attack,
    )  # fmt: skip
    assert run.signalled_at is not None
    took_s = run.ended_at - run.signalled_at
    assert took_s < END_WITHIN_S, took_s
    print(f"ended {took_s:.2f} s after SIGTERM; loop lag {run.lag}; {run.peak_rss_mb:.0f} MB")
    check_bounded(run)
    stats = settled(sim)
    check_counts(run.summary, stats["by_fault"]["held_open"], None)
    assert "Got SIGTERM signal" in run.stderr
    srv = run.summary["server"]
    assert srv["scrapes"] == 0 and "response headers over 65536 bytes" in srv["not_available"]


# --- llama-server's keep-alive ----------------------------------------------------------------


def test_a_server_closing_after_every_stream_loses_none_of_1000_requests(sim, tmp_path):
    """llama.cpp's server closes after each streamed answer while saying keep-alive:
    10 users x 100 streams, none failed; the requests sent again are in the summary."""
    reconfigure(sim, close_after_stream=True, output_tokens=3)
    run = run_locust(
        tmp_path, sim.url, "--stream", "--requests-per-user", "100", "--max-tokens", "3",
        "--preflight", "off", users=10, run_time_s=None,
    )  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]
    assert run.peak_rss_mb < RSS_LIMIT_MB
    s = run.summary
    assert s["failures"] == 0, s["failure_examples"]
    stats = settled(sim)
    assert s["requests"] == 1000 == stats["completed"] == stats["requests"]
    assert isinstance(s["retries"], int) and s["retries"] >= 0
    if s["retries"]:
        assert f"retries: {s['retries']} requests sent again" in run.stdout
    print("retries:", s["retries"])  # (how many races there were: the machine's timing)
