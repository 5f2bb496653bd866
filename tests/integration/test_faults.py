"""Every fault the simulator can inject, counted exactly, by kind, by in-process Locust runs.

Faults are mixed with clean requests (``fault_every=2``: every second request the server
receives, or ``fault_first``). For each run: the failures by kind equal what the server
injected; the successes equal the server's completed requests; every request of every
user is accounted for (the run goes on after each failure, no user raises or stops); the
server saw each request once, but for the one retry a request gets when a reused
keep-alive connection was closed before any byte of an answer (``retries``: the server's
faults are then the client's failures plus its retries); the latency figures hold the
successful requests only; and the failure example says what happened, in words.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gevent.server import StreamServer

from llm_users.measure.per_request import RequestResult
from llm_users.record import RequestRecord
from llm_users.simulator import SimConfig, SimulatorProcess
from tests.helpers import run_in_process

DEFAULTS = SimConfig().to_dict()
USERS, REQUESTS = 2, 4
N = USERS * REQUESTS
TOKENS = 6  # per clean request; 1 per event
LATE_MS = 25.0  # how late a timeout may fire on a busy 2-core machine, plus the loop lag

Pair = tuple[RequestRecord, RequestResult]


@pytest.fixture
def sim_with(shared_sim):
    """``sim_with(**knobs)``: the module's simulator reconfigured, with fresh records/ids."""

    def configure(**knobs: Any) -> SimulatorProcess:
        settle(shared_sim)  # an earlier test's stalled request must not leak into this one
        fast = {"ttft_ms": 10, "itl_ms": 2, "output_tokens": TOKENS}
        shared_sim.configure(**{**DEFAULTS, **fast, **knobs})
        shared_sim.reset()
        return shared_sim

    return configure


def settle(sim: SimulatorProcess) -> dict[str, Any]:
    """The server's stats once nothing is in flight (a stalled handler may run on)."""
    deadline = time.monotonic() + 10
    while (stats := sim.stats())["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return stats


class Run:
    """One in-process run: the summary, every (record, figures), the server's ground truth."""

    def __init__(
        self,
        host: str,
        *args: str,
        stream: bool = True,
        users: int = USERS,
        requests: int = REQUESTS,
    ) -> None:
        self.pairs: list[Pair] = []
        self.users, self.requests = users, requests
        plugin = run_in_process(
            host,
            "--stream" if stream else "--no-stream",
            "--requests-per-user",
            str(requests),
            "--max-tokens",
            "100",
            *args,
            users=users,
            collect=self.pairs,
        )
        self.plugin = plugin
        assert plugin.last_summary is not None
        self.s: dict[str, Any] = plugin.last_summary
        self.stream = stream

    @property
    def ok(self) -> list[Pair]:
        return [(rec, res) for rec, res in self.pairs if res.ok]

    @property
    def failed(self) -> list[Pair]:
        return [(rec, res) for rec, res in self.pairs if not res.ok]

    def check(self, kind: str, n_failed: int, tokens: int = TOKENS) -> None:
        """Exact counts by kind; the run went on; failures kept out of every figure."""
        s, total = self.s, self.users * self.requests
        # Nothing raised out of a user; every user sent all its requests.
        assert not self.plugin.env.runner.exceptions
        assert self.plugin.control.users_done == self.users
        assert len(self.pairs) == total
        assert s["requests"] + s["failures"] == total
        assert s["failures_by_kind"] == ({kind: n_failed} if n_failed else {})
        assert s["requests"] == len(self.ok) == total - n_failed
        assert all(res.failure == kind for _, res in self.failed)
        # Locust's own table counts the same failures.
        entry = self.plugin.env.stats.get("/v1/chat/completions", "POST")
        assert entry.num_requests == total and entry.num_failures == n_failed
        # Failed requests carry no latency figure; the distributions hold successes only.
        for _, res in self.failed:
            assert res.ttft_ms is None and res.itl_ms == [] and res.tpot_ms is None
            assert res.follow_tokens is None
        ok = len(self.ok)
        if self.stream:
            assert s["ttft_ms"]["count"] == s["e2e_ms"]["count"] == ok
            assert s["itl_ms"]["count"] == ok * (tokens - 1)
            if ok:
                ttfts = [res.ttft_ms for _, res in self.ok]
                assert s["ttft_ms"]["max"] == pytest.approx(max(ttfts), abs=0.1)
                assert s["average_first_token_latency_ms"] == pytest.approx(sum(ttfts) / ok)
                assert s["average_follow_tokens"] == tokens - 1
        else:
            assert s["latency_ms"]["count"] == ok
        assert s["output_tokens"] == ok * tokens

    def check_server(self, sim: SimulatorProcess, fault: str, n_failed: int) -> dict[str, Any]:
        """The server saw each request once (and each retried one twice), injected
        ``n_failed`` faults the client counted plus one per retry, completed the rest."""
        stats = settle(sim)
        retries = self.s["retries"]
        assert stats["requests"] == self.users * self.requests + retries  # no hidden retry
        assert stats["by_fault"] == {fault: n_failed + retries}
        assert stats["completed"] == self.s["requests"]
        clean = [r for r in sim.records() if r["fault"] is None]
        assert len(clean) == self.s["requests"] and all(r["completed"] for r in clean)
        return stats

    @property
    def late_ms(self) -> float:
        """How late a timeout may fire: LATE_MS plus the client's measured loop lag."""
        return LATE_MS + ((self.s.get("client_loop_lag_ms") or {}).get("max") or 0.0)

    def example(self, kind: str) -> str:
        return self.s["failure_examples"][kind]


# --- HTTP errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, "json", "HTTP 500: simulated failure (code 500)"),
        (502, "html", "HTTP 502: 502 Bad Gateway"),  # the words, not the markup
        (503, "empty", "HTTP 503: (no body)"),
    ],
)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "unary"])
def test_http_error_status_is_its_own_kind(sim_with, status, body, message, stream):
    sim = sim_with(fault="http_error", fault_every=2, error_status=status, error_body=body)
    run = Run(sim.url, stream=stream)
    run.check(f"http_{status}", N // 2)
    run.check_server(sim, "http_error", N // 2)
    assert run.example(f"http_{status}") == message
    assert all(res.status == status for _, res in run.failed)


def test_rate_limit_burst_then_recovery(sim_with):
    sim = sim_with(fault="rate_limit", fault_first=3)
    run = Run(sim.url)
    run.check("http_429", 3)
    run.check_server(sim, "rate_limit", 3)
    assert run.example("http_429") == "HTTP 429: Rate limit reached (simulated). (code 429)"


# --- faults inside a 200 stream ---------------------------------------------------------------


@pytest.mark.parametrize("after", [3, TOKENS], ids=["mid-stream", "after-the-last-token"])
@pytest.mark.parametrize(
    ("fault", "kind", "message"),
    [
        ("error_event", "error_event", "simulated failure (code 500)"),
        ("bad_json", "malformed_event", "data line is not JSON: this is not json"),
        ("drop", "connection_dropped", "connection closed mid-response"),
        # role chunk + the tokens, then a clean end of the body: no finish_reason, no [DONE]
        ("truncate", "truncated_stream", "no [DONE] and no finish_reason after {events} events"),
    ],
)
def test_fault_inside_a_200_stream(sim_with, fault, kind, message, after):
    sim = sim_with(fault=fault, fault_every=2, fault_after=after)
    run = Run(sim.url)
    run.check(kind, N // 2)
    run.check_server(sim, fault, N // 2)
    assert message.format(events=after + 1) in run.example(kind)
    for rec, res in run.failed:
        # The tokens before the fault arrived, and count for nothing.
        assert res.status == 200 and len(rec.token_times) == res.token_events == after


@pytest.mark.parametrize(
    ("fault", "kind", "message"),
    [
        ("error_event", "http_500", "HTTP 500: simulated failure (code 500)"),
        ("bad_json", "malformed_response", "response is not JSON: this is not json"),
        ("truncate", "malformed_response", "response is not JSON: {"),
        ("drop", "connection_reset", "connection closed before any response"),
    ],
)
def test_fault_in_a_non_streamed_response(sim_with, fault, kind, message):
    sim = sim_with(fault=fault, fault_every=2)
    run = Run(sim.url, stream=False)
    faults = settle(sim)["by_fault"][fault]
    if fault != "drop":  # an answer came: never sent again
        assert run.s["retries"] == 0 and faults == N // 2
    # A drop before any byte on a reused connection is retried once (a keep-alive race);
    # on a fresh connection (each user's first request, or a retry) it is a failure.
    failed = faults - run.s["retries"]
    assert failed >= 1
    run.check(kind, failed)
    run.check_server(sim, fault, failed)
    assert run.example(kind).startswith(message)


# --- timeouts ---------------------------------------------------------------------------------


def test_stall_beyond_first_token_timeout(sim_with):
    sim = sim_with(fault="stall", fault_every=2, stall_ms=1000)
    run = Run(sim.url, "--first-token-timeout", "0.3")
    run.check("first_token_timeout", N // 2)
    assert run.example("first_token_timeout") == "no first token within 0.3 s"
    for rec, res in run.failed:
        # Given up at the timeout, not when the stalled token came.
        assert 300 <= res.e2e_ms < 300 + run.late_ms and not rec.token_times
    # Meanwhile the other user went on: its requests ended while one of these was stalled.
    assert any(rec.start < ok.end < rec.end for rec, _ in run.failed for ok, _ in run.ok)
    assert run.s["ttft_ms"]["max"] < 300  # no stalled request in TTFT
    stats = settle(sim)  # the stalled handlers find the client gone
    assert stats["requests"] == N and stats["by_fault"] == {"stall": N // 2}
    assert stats["completed"] == run.s["requests"]


def test_keep_alives_do_not_hold_off_the_first_token_timeout(sim_with):
    # Bytes keep coming (a comment every 50 ms, after the role chunk), but no token.
    sim = sim_with(fault="stall", fault_every=2, stall_ms=1000, keepalive_ms=50)
    run = Run(sim.url, "--first-token-timeout", "0.3")
    run.check("first_token_timeout", N // 2)
    for rec, res in run.failed:
        assert 300 <= res.e2e_ms < 300 + run.late_ms and rec.events == 1  # the role chunk


def test_stall_beyond_request_timeout(sim_with):
    sim = sim_with(fault="stall", fault_every=2, stall_ms=1000)
    run = Run(sim.url, "--request-timeout", "0.3")  # first-token timeout: 120 s
    run.check("request_timeout", N // 2)
    assert run.example("request_timeout") == "request not complete within 0.3 s"
    for _, res in run.failed:
        assert 300 <= res.e2e_ms < 300 + run.late_ms
    assert settle(sim)["completed"] == run.s["requests"]


def test_request_timeout_mid_stream(sim_with):
    # Tokens flow, but the whole answer (20 x 40 ms) takes longer than --request-timeout.
    sim = sim_with(ttft_ms=10, itl_ms=40, output_tokens=20)
    run = Run(sim.url, "--request-timeout", "0.25", users=2, requests=2)
    run.check("request_timeout", 4)
    for rec, res in run.failed:
        assert len(rec.token_times) >= 3  # the first tokens came, and count for nothing
        assert 250 <= res.e2e_ms < 250 + run.late_ms
    assert run.s["ttft_ms"]["count"] == run.s["itl_ms"]["count"] == 0


# --- the connection -------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_not_listening_is_a_connect_error():
    port = closed_port()
    run = Run(f"http://127.0.0.1:{port}", "--preflight", "off", "--max-failing-seconds", "0")
    run.check("connect_error", N)
    example = run.example("connect_error")
    assert example.startswith(f"cannot connect to http://127.0.0.1:{port}")
    assert "refused" in example.lower()


def test_reset_on_arrival_is_retried_once_on_a_reused_connection_else_counted(sim_with):
    sim = sim_with(fault="reset", fault_every=2)
    run = Run(sim.url)
    failed = settle(sim)["by_fault"]["reset"] - run.s["retries"]
    assert failed >= 1 and all(rec.retries <= 1 for rec, _ in run.pairs)
    run.check("connection_reset", failed)
    run.check_server(sim, "reset", failed)  # N requests and one per retry, not more
    assert run.example("connection_reset") == "connection reset before any response"


STREAM_KINDS = {
    "http_error": "http_500",
    "rate_limit": "http_429",
    "error_event": "error_event",
    "bad_json": "malformed_event",
    "drop": "connection_dropped",
    "truncate": "truncated_stream",
    "reset": "connection_reset",
}
UNARY_KINDS = {
    **STREAM_KINDS,
    "error_event": "http_500",  # the simulator answers a non-streamed error_event with a 500
    "bad_json": "malformed_response",
    "truncate": "malformed_response",
    "drop": "connection_reset",  # closed before any byte of the response
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "unary"])
def test_every_fault_at_random_counted_by_kind(sim_with, stream):
    kinds = STREAM_KINDS if stream else UNARY_KINDS
    sim = sim_with(faults=list(kinds), fault_rate=0.5, seed=3)
    run = Run(sim.url, stream=stream, users=3, requests=8)
    stats = settle(sim)
    retries = run.s["retries"]
    assert stats["requests"] == 24 + retries and len(stats["by_fault"]) >= 4  # a real mix
    want: dict[str, int] = {}
    for fault, n in stats["by_fault"].items():
        want[kinds[fault]] = want.get(kinds[fault], 0) + n
    # only a reset or close before any byte is retried: the server counted it, not the client
    want["connection_reset"] = want.get("connection_reset", 0) - retries
    assert want["connection_reset"] >= 0
    assert run.s["failures_by_kind"] == {k: n for k, n in sorted(want.items()) if n}
    assert run.s["requests"] == stats["completed"] == 24 + retries - stats["faulted"]
    ok = run.s["requests"]
    if stream:
        assert run.s["ttft_ms"]["count"] == run.s["e2e_ms"]["count"] == ok
        assert run.s["itl_ms"]["count"] == ok * (TOKENS - 1)
    else:
        assert run.s["latency_ms"]["count"] == ok
    assert run.s["output_tokens"] == ok * TOKENS
    assert not run.plugin.env.runner.exceptions and run.plugin.control.users_done == 3


# --- an idle keep-alive connection closed by the server ------------------------------------


RESPONSE = (
    b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
)


@pytest.fixture
def closing_server() -> Iterator[tuple[str, list[int]]]:
    """Answers one request per connection, then closes it though it said keep-alive."""
    served: list[int] = []

    def handle(sock: Any, _addr: Any) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                return
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(65536)
        served.append(1)
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(RESPONSE), RESPONSE)
        )
        sock.close()  # at once (no yield): the client finds it closed when it is idle

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", served
    finally:
        server.stop()


def test_idle_connection_closed_by_the_server_is_neither_failure_nor_retry(closing_server):
    url, served = closing_server
    run = Run(url, "--preflight", "off", stream=False, users=2, requests=3)
    run.check("none", 0, tokens=2)  # the kind is unused: no failure at all
    assert len(served) == 6  # one request per connection, none sent twice
