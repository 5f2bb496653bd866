"""Servers that misbehave on purpose: the client stays bounded, on time, and fair.

Each hostile server is a few lines here (gevent servers on 127.0.0.1, port 0). The endless
ones run against real ``locust`` subprocesses under an address-space limit and a hard
timeout, with one user on the hostile server and two on the simulator: memory stays small,
the loop stays responsive, the failures are ``oversized_response``, and the other users'
first tokens keep matching the simulator's own records.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import greenlet
import psutil
import pytest
from gevent.server import StreamServer

from tests.helpers import ROOT, bounded_child, run_in_process, sim_lag_ms

Respond = Callable[[Any, bytes], bool]  # (socket, request head) -> keep the connection?

RSS_LIMIT_MB = 300
LAG_P99_MS = 20.0


def read_request(sock: Any) -> bytes | None:
    """One request's head (its body is read and dropped); None when the peer closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return None
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    low = head.lower()
    if b"content-length:" in low:
        length = int(low.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            more = sock.recv(65536)
            if not more:
                return None
            body += more
    return head


@pytest.fixture
def hostile() -> Iterator[Callable[[Respond], str]]:
    """``url = hostile(respond)``: a server calling ``respond`` for each request."""
    servers: list[StreamServer] = []

    def start(respond: Respond) -> str:
        def handle(sock: Any, _addr: Any) -> None:
            try:
                while (head := read_request(sock)) is not None:
                    if not respond(sock, head):
                        break
            except OSError:
                pass  # the client gave up: what these servers are for

        server = StreamServer(("127.0.0.1", 0), handle)
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.stop(timeout=1)


def endless(head: bytes, first: bytes, piece: bytes) -> Respond:
    """A chunked 200 that never ends: ``first``, then ``piece`` forever, as fast as read."""

    def respond(sock: Any, _head: bytes) -> bool:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(first), first))
        frame = b"%x\r\n%s\r\n" % (len(piece), piece)
        while True:
            sock.sendall(frame)

    return respond


ONE_TOKEN = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'


def endless_trailers(sock: Any) -> bool:
    """A token, the last chunk, then trailer lines forever (kept without bound before)."""
    sock.sendall(SSE_HEAD + b"%x\r\n%s\r\n0\r\n" % (len(ONE_TOKEN), ONE_TOKEN))
    lines = b"".join(b"X-Trailer-%d: %s\r\n" % (i, b"v" * 200) for i in range(256))
    while True:
        sock.sendall(lines)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
JSON_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)
ENDLESS = {
    "sse-line": (True, endless(SSE_HEAD, b"data: ", b"x" * 65536)),
    # valid one-token events, never ending: bounded by --max-output-factor x --max-tokens
    "one-token-events": (True, endless(SSE_HEAD, ONE_TOKEN, ONE_TOKEN * 1024)),
    # a token, then trailers after the last chunk, never ending
    "trailers": (True, lambda sock, head: endless_trailers(sock)),
    "json-body": (False, endless(JSON_HEAD, b'{"choices": [', b'{"text": "xx"},' * 4096)),
}


def reading_greenlets() -> int:
    """Live greenlets with the client's code on their stack (a user still reading)."""
    gc.collect()
    n = 0
    with warnings.catch_warnings():  # some modules' objects warn when merely looked at
        warnings.simplefilter("ignore")
        objects = gc.get_objects()
        greenlets = [g for g in objects if isinstance(g, greenlet.greenlet)]
    for g in greenlets:
        if not g.dead:
            frame = g.gr_frame
            while frame is not None:
                if frame.f_code.co_filename.endswith(os.path.join("llm_users", "client.py")):
                    n += 1
                    break
                frame = frame.f_back
    return n


def in_process(url: str, *args: str, users: int = 2, requests: int = 2) -> dict[str, Any]:
    plugin = run_in_process(
        url, "--requests-per-user", str(requests), *args, users=users, timeout=60
    )
    assert not plugin.env.runner.exceptions and plugin.control.users_done == users
    assert plugin.last_summary is not None
    return plugin.last_summary


# --- headers -------------------------------------------------------------------------------


def many_headers(sock: Any, _head: bytes) -> bool:
    lines = b"".join(b"X-Header-%d: value\r\n" % i for i in range(5000))
    sock.sendall(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\n{}")
    return True


def huge_header(sock: Any, _head: bytes) -> bool:
    sock.sendall(b"HTTP/1.1 200 OK\r\nX-Huge: ")
    while True:
        sock.sendall(b"y" * 65536)


@pytest.mark.parametrize(
    ("respond", "message"),
    [(many_headers, "more than 100 response headers"),
     (huge_header, "response headers over 65536 bytes")],
    ids=["many", "huge"],
)  # fmt: skip
def test_huge_response_heads_are_oversized(hostile, respond, message):
    url = hostile(respond)
    s = in_process(url, "--preflight", "off", "--stream")
    assert s["failures_by_kind"] == {"oversized_response": 4} and s["requests"] == 0
    assert s["failure_examples"]["oversized_response"].startswith(message)


# --- slow and silent servers ----------------------------------------------------------------


def dribble(data: bytes, every_s: float = 1.0) -> Respond:
    """Sends ``data`` one byte per ``every_s`` (then nothing more)."""

    def respond(sock: Any, _head: bytes) -> bool:
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
            gevent.sleep(every_s)
        return False

    return respond


TOKEN = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'


def test_slow_loris_first_token_timeout_fires_on_time(hostile):
    url = hostile(dribble(SSE_HEAD + b"%x\r\n%s\r\n" % (len(TOKEN), TOKEN)))
    t0 = time.perf_counter()
    s = in_process(url, "--preflight", "off", "--stream", "--first-token-timeout", "0.5")
    took = time.perf_counter() - t0
    assert s["failures_by_kind"] == {"first_token_timeout": 4}
    # Each request ends at its timeout (2 in a row per user), not at the dribble's pace.
    late = 0.1 + (s.get("client_loop_lag_ms") or {}).get("max", 0) / 1000
    assert 2 * 0.5 <= took < 2 * (0.5 + late) + 1.0  # + the run's start and stop
    assert s["e2e_ms"]["count"] == 0
    assert reading_greenlets() == 0  # no user left reading: every greenlet ended


def test_slow_loris_after_the_first_token_request_timeout_fires_on_time(hostile):
    frame = b"%x\r\n%s\r\n" % (len(TOKEN), TOKEN)

    def respond(sock: Any, head: bytes) -> bool:
        sock.sendall(SSE_HEAD + frame)  # a first token at once, then 1 byte a second
        return dribble(frame * 10)(sock, head)

    url = hostile(respond)
    pairs: list[Any] = []
    plugin = run_in_process(
        url, "--preflight", "off", "--stream", "--requests-per-user", "2",
        "--request-timeout", "0.6", users=2, collect=pairs,
    )  # fmt: skip
    s = plugin.last_summary
    assert s is not None and s["failures_by_kind"] == {"request_timeout": 4}
    late = 100 + (s.get("client_loop_lag_ms") or {}).get("max", 0)
    for rec, res in pairs:
        assert len(rec.token_times) == 1 and 600 <= res.e2e_ms < 600 + late
    assert reading_greenlets() == 0


def never_answer(sock: Any, _head: bytes) -> bool:
    gevent.sleep(30)  # accepted and read, never answered (the fixture stops it)
    return False


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "unary"])
def test_a_server_that_never_answers_times_out(hostile, stream):
    url = hostile(never_answer)
    args = ["--stream"] if stream else []
    timeout = "--first-token-timeout" if stream else "--request-timeout"
    pairs: list[Any] = []
    plugin = run_in_process(
        url, "--preflight", "off", *args, timeout, "0.4", "--requests-per-user", "2",
        users=2, collect=pairs,
    )  # fmt: skip
    s = plugin.last_summary
    kind = "first_token_timeout" if stream else "request_timeout"
    assert s is not None and s["failures_by_kind"] == {kind: 4}
    late = 100 + (s.get("client_loop_lag_ms") or {}).get("max", 0)
    assert all(400 <= res.e2e_ms < 400 + late for _, res in pairs)


MODELS = b'{"object":"list","data":[{"id":"m","object":"model"}]}'


def test_models_answered_but_every_post_reset(hostile):
    posts: list[int] = []

    def respond(sock: Any, head: bytes) -> bool:
        if head.startswith(b"GET /v1/models"):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(MODELS), MODELS))  # fmt: skip
            return True
        if head.startswith(b"POST"):  # (a GET /metrics probe is reset too, but is no request)
            posts.append(1)
        # RST, not FIN: SO_LINGER with a zero timeout, then close.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        return False

    url = hostile(respond)
    s = in_process(url, "--stream", "--max-failing-seconds", "0", requests=3)
    assert s["failures_by_kind"] == {"connection_reset": 6} and s["requests"] == 0
    assert len(posts) == 6  # each request sent once: no retry
    assert s["failure_examples"]["connection_reset"] == "connection reset before any response"


# --- endless bodies: real locust processes ----------------------------------------------------

LOCUSTFILE = '''
import itertools, os
from dataclasses import replace

from locust import events

import llm_users
from llm_users.wire.client import LLMClient
from llm_users.wire.http import Origin

llm_users.register(events)


class Normal(llm_users.BaseLLMUser):
    """Streams from the simulator; max_tokens tags pair each request with the server's."""
    fixed_count = 2
    tags = itertools.count(1_000_000)

    def next_request(self):
        body = super().next_request()
        body["max_tokens"] = next(Normal.tags)
        return body


class Hostile(llm_users.BaseLLMUser):
    """The same requests, to the hostile server."""
    fixed_count = 1

    def on_start(self):
        super().on_start()
        self.llm.close()
        self.llm = LLMClient(replace(self.llm.config, origin=Origin.parse(os.environ["HOSTILE"])))

    def next_request(self):
        body = super().next_request()
        body["stream"] = os.environ["HOSTILE_STREAM"] == "1"
        body.pop("stream_options", None)
        return body
'''


def run_under_attack(
    tmp_path: Path, sim_url: str, hostile_url: str, stream: bool
) -> tuple[subprocess.CompletedProcess[str], float, dict[str, Any], list[dict[str, Any]]]:
    """3 users for 6 s (2 normal, 1 hostile); returns the process, its peak RSS (MB), the
    summary and the client's records."""
    lf = tmp_path / "attack_locustfile.py"
    lf.write_text(LOCUSTFILE)
    out, recs = tmp_path / "summary.json", tmp_path / "records.jsonl"
    cmd = [sys.executable, "-m", "locust", "-f", str(lf), "--headless", "-u", "3", "-r", "3",
           "--run-time", "6s", "--host", sim_url, "--stream", "--max-tokens", "50",
           "--summary-json", str(out), "--records", str(recs)]  # fmt: skip
    env = dict(os.environ, HOSTILE=hostile_url, HOSTILE_STREAM="1" if stream else "0")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=bounded_child,
    )  # fmt: skip
    ps = psutil.Process(proc.pid)
    peak, deadline = 0, time.monotonic() + 60  # the hard timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, ps.memory_info().rss)
            time.sleep(0.05)  # cooperative (gevent): the hostile server keeps sending
    finally:
        if proc.poll() is None:
            proc.kill()
    stdout, stderr = proc.communicate(timeout=10)
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    assert out.exists(), stderr[-3000:]
    rows = [json.loads(line) for line in recs.read_text().splitlines()]
    return done, peak / 2**20, json.loads(out.read_text()), rows


@pytest.mark.parametrize("shape", list(ENDLESS))
def test_endless_body_is_bounded_and_the_other_users_go_on(hostile, simulator, tmp_path, shape):
    stream, respond = ENDLESS[shape]
    sim = simulator(ttft_ms=30, itl_ms=5, output_tokens=20)
    proc, peak_mb, s, rows = run_under_attack(tmp_path, sim.url, hostile(respond), stream)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert peak_mb < RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
    lag = s["client_loop_lag_ms"]
    assert lag["p99"] < LAG_P99_MS, lag
    # The hostile user failed, again and again, as oversized_response only.
    bad = [r for r in rows if r["failure"]]
    assert {r["failure"] for r in bad} == {"oversized_response"} and len(bad) >= 2
    assert set(s["failures_by_kind"]) == {"oversized_response"}
    # The normal users completed requests all along the attack.
    good = [r for r in rows if r["ok"]]
    first, last = min(r["start_wall"] for r in bad), max(r["start_wall"] for r in bad)
    assert sum(first <= r["start_wall"] <= last for r in good) >= 10
    # ... with first tokens as late as the simulator's own records say, plus the usual noise.
    server = {r["max_tokens"]: r for r in sim.records() if r["first_token_at"]}
    late = [
        r["ttft_ms"] - (server[r["max_tokens"]]["first_token_at"]
                        - server[r["max_tokens"]]["received_at"]) * 1000
        for r in good if r["max_tokens"] in server
    ]  # fmt: skip
    assert len(late) == len(good) >= 10
    assert statistics.median(late) < 3.0 + lag["p99"], late
    # (each includes the request's delivery: the simulator stamps its arrival when its own
    # loop gets round to it, as late as its measured lag on a busy machine)
    assert max(late) < 50.0 + lag["max"] + sim_lag_ms(sim), (late, sim_lag_ms(sim))


# --- the simulator's hostile modes, in process --------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("deep_json", "malformed_event"), ("deep_error", "http_500"),
     ("script_flood", "http_502")],
)  # fmt: skip
def test_hostile_answers_are_counted_failures(simulator, fault, kind):
    sim = simulator(fault=fault, ttft_ms=1, itl_ms=1, output_tokens=5)
    pairs: list[Any] = []
    plugin = run_in_process(
        sim.url, "--stream", "--requests-per-user", "3", "--max-failing-seconds", "0",
        users=2, collect=pairs,
    )  # fmt: skip
    s = plugin.last_summary
    assert not plugin.env.runner.exceptions and s is not None
    assert s["failures_by_kind"] == {kind: 6} and s["requests"] == 0
    assert sim.stats()["by_fault"] == {fault: 6}  # counts equal what the server answered
    if fault == "script_flood":  # the page's words only (none): no markup
        assert "<script" not in s["failure_examples"][kind]


def test_a_body_held_open_after_done_is_counted_after_a_short_grace(simulator):
    sim = simulator(fault="held_open")
    pairs: list[Any] = []
    t0 = time.perf_counter()
    plugin = run_in_process(
        sim.url, "--stream", "--requests-per-user", "3", users=2, collect=pairs
    )  # fmt: skip
    took = time.perf_counter() - t0
    s = plugin.last_summary
    assert s is not None and s["requests"] == 6 and s["failures"] == 0
    # 3 requests in a row per user, each held 0.1 s after [DONE] at most (not 600 s)
    lag_s = (s.get("client_loop_lag_ms") or {}).get("max", 0) / 1000
    assert took < 3 * (0.1 + 0.1 + lag_s) + 5.0
    deadline = time.monotonic() + 5  # the server counts each when it sees the close
    while sim.stats()["by_fault"] != {"held_open": 6} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.stats()["by_fault"] == {"held_open": 6}


def test_a_server_closing_after_every_stream_loses_no_request(simulator):
    """llama.cpp's server closes after each streamed answer while saying keep-alive:
    10 users x 100 fast streams, none failed; retries counted on their own."""
    sim = simulator(close_after_stream=True, ttft_ms=0, itl_ms=0, output_tokens=3)
    plugin = run_in_process(
        sim.url, "--stream", "--requests-per-user", "100", "--max-tokens", "3",
        "--preflight", "off", users=10, timeout=120,
    )  # fmt: skip
    s = plugin.last_summary
    assert not plugin.env.runner.exceptions and s is not None
    assert s["failures"] == 0, s["failure_examples"]
    stats = sim.stats()
    assert s["requests"] == 1000 == stats["completed"] == stats["requests"]
    print("retries:", s["retries"])  # (how many races there were: the machine's timing)
