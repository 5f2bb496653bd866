"""``python -m bench.hotpath``: the client's per-token cost, piece by piece, in one process.

No socket and no event loop: a recorded-shape response (the simulator's own framing, HTTP
chunked) is fed to each stage of the streaming read path in turn, and then to the whole
``LLMClient.request`` through a fake connection, and the finished record to the plugin's
``complete()``. Compare the total with ``python -m bench --only ingest`` (CPU per token
measured on the real process): the difference is the socket, gevent and the kernel.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

import orjson

from llm_users.measure.aggregate import Aggregate
from llm_users.measure.per_request import result_of
from llm_users.simulator import payloads as p
from llm_users.simulator.config import SimConfig
from llm_users.simulator.stream import make_plan
from llm_users.wire.client import ClientConfig, LLMClient
from llm_users.wire.endpoints import CHAT
from llm_users.wire.http import Origin, ResponseHead
from llm_users.wire.sse import SSEParser

RECV = 65536


def response_bytes(tokens: int, burst: bool) -> tuple[bytes, list[bytes]]:
    """Head + chunked body as the simulator writes it; and the pieces one recv each gets.

    Burst: the whole stream in one write, read in 64 KiB recvs. Otherwise one recv per
    write (an event each), as at 20 ms between tokens.
    """
    cfg = SimConfig(output_tokens=tokens, burst=burst, ttft_ms=0, itl_ms=0)
    job = p.Job(
        rid=7,
        chat=True,
        response_id="chatcmpl-0123456789abcdef01234567",
        created=int(time.time()),
        model="sim-model",
        prompt_tokens=20,
        reasoning_tokens=0,
        content_tokens=tokens,
        finish_reason="length",
        include_usage=True,
    )
    plan = make_plan(cfg, job, None)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
        b"Server: Python/3.11 aiohttp/3\r\n\r\n"
    )
    writes = [b"%x\r\n%s\r\n" % (len(w.data), w.data) for w in plan.writes] + [b"0\r\n\r\n"]
    whole = head + b"".join(writes)
    if burst:
        pieces = [whole[i : i + RECV] for i in range(0, len(whole), RECV)]
    else:
        pieces = [head + writes[0], *writes[1:]]
    return whole, pieces


class FakeConn:
    """Stands for :class:`llm_users.wire.http.Connection`: replays the pieces, one per recv
    (user-space stamps, read by its user: no kernel stamps, not pollable)."""

    kernel_stamps = False
    stamped = False
    pollable = False
    recv_real: float | None = None

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.i = 0
        self.connected = True

    def closed_while_idle(self) -> bool:
        return False

    def send(self, data: bytes) -> None:
        self.i = 0

    def recv(self, timeout: float | None) -> bytes:
        piece = self.pieces[self.i]
        self.i += 1
        return piece

    def connect(self) -> None:
        self.connected = True

    def close(self) -> None:
        pass


def timeit(fn: Callable[[], Any], min_time: float = 0.5) -> float:
    """Seconds per call: the best of 5 batches."""
    fn()
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt > min_time / 5:
            break
        n *= 2
    best = dt / n
    for _ in range(4):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def stages(tokens: int, burst: bool) -> list[tuple[str, float]]:
    whole, pieces = response_bytes(tokens, burst)
    # What each stage gets from the one before.
    resp = ResponseHead("POST")
    bodies = []
    for piece in pieces:
        resp.feed(piece)
        bodies.append(resp.take_body())
    parser = SSEParser()
    events = [ev for body in bodies for ev in parser.feed(body)]
    datas = [ev.data for ev in events if ev.data != b"[DONE]"]
    objs = [orjson.loads(d) for d in datas]
    chunks = [CHAT.chunk(o) for o in objs]

    def llhttp() -> None:
        r = ResponseHead("POST")
        for piece in pieces:
            r.feed(piece)
            r.take_body()

    def sse() -> None:
        sp = SSEParser()
        for body in bodies:
            sp.feed(body)

    def sse_batch() -> None:
        sp = SSEParser()
        for body in bodies:
            sp.feed_batch(body)

    split = SSEParser()
    runs = [run for run in (split.feed_batch(body)[0] for body in bodies) if run]
    on_batch = CHAT.on_batch
    assert on_batch is not None

    def batch() -> None:
        for run in runs:
            on_batch(run)

    def loads() -> None:
        for d in datas:
            orjson.loads(d)

    def chunk() -> None:
        for o in objs:
            CHAT.chunk(o)

    def appends() -> None:
        a: list[float] = []
        b: list[str] = []
        for c in chunks:
            if c.text:
                a.append(0.0)
                b.append(c.text)

    config = ClientConfig(origin=Origin.parse("http://127.0.0.1:9"), endpoint=CHAT)
    client = LLMClient(config, connection=FakeConn(pieces))
    body = {
        "model": "sim-model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    def request() -> Any:
        rec = client.request(body)
        assert rec.ok and len(rec.token_times) == tokens, (rec.failure, rec.message)
        return rec

    rec = request()
    agg = Aggregate()

    def result() -> None:
        result_of(rec)

    res = result_of(rec)

    def aggregate() -> None:
        agg.add(res)

    rows = [
        ("llhttp feed + take_body", timeit(llhttp)),
        ("SSE split (SSEParser.feed)", timeit(sse)),
        ("SSE payloads (SSEParser.feed_batch)", timeit(sse_batch)),
        ("token chunks (CHAT.on_batch)", timeit(batch)),
        ("orjson.loads", timeit(loads)),
        ("chunk extraction (CHAT.chunk)", timeit(chunk)),
        ("token_times/texts appends", timeit(appends)),
        ("whole LLMClient.request (no socket)", timeit(request)),
        ("result_of (per request)", timeit(result)),
        ("Aggregate.add (per request)", timeit(aggregate)),
    ]
    rows += _locust_complete(rec)
    return [(name, t / tokens) for name, t in rows]


def offline_plugin() -> Any:
    """The plugin on a local runner, streaming, ``--preflight off``: nothing is ever sent.
    For timing its parts without a server (here, and in bench/master_scale.py)."""
    from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments
    from locust.env import Environment
    from locust.event import Events

    from llm_users import LLMUser, add_arguments, setup

    parser = get_empty_argument_parser()
    setup_parser_arguments(parser)
    add_arguments(parser)
    opts = parser.parse_args(["--headless", "--stream", "--preflight", "off"])
    env = Environment(
        user_classes=[LLMUser], events=Events(), host="http://127.0.0.1:9", parsed_options=opts
    )
    plugin = setup(env)
    env.create_local_runner()
    plugin.on_init()
    return plugin


def _locust_complete(rec: Any) -> list[tuple[str, float]]:
    """The plugin's whole ``complete()``: result_of, aggregate, Locust's events and stats."""
    try:
        plugin = offline_plugin()
    except ImportError:
        return []
    return [("plugin.complete (per request)", timeit(lambda: plugin.complete(rec)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__)
    ap.add_argument("--tokens", type=int, default=1000)
    args = ap.parse_args(argv)
    gc.collect()
    for burst in (True, False):
        shape = "burst (64 KiB recvs)" if burst else "one event per recv"
        print(f"\n{args.tokens} tokens, {shape}: µs per token")
        for name, t in stages(args.tokens, burst):
            print(f"  {name:<40}{t * 1e6:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
