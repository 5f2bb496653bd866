"""The client through its connection seam: scripted byte reads, no sockets."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import gevent
import pytest
from geventhttpclient.response import HTTPParseError

import llm_users.wire.client as client_mod
from llm_users.record import FailureKind, RequestRecord
from llm_users.wire.client import ClientConfig, LLMClient, Oversized, failure_of
from llm_users.wire.endpoints import CHAT, RESPONSES, Endpoint
from llm_users.wire.http import Origin

from ..streams import CONTENT_TEXTS, USAGE, vllm_chat_stream

ORIGIN = Origin.parse("http://127.0.0.1:9")


class FakeConnection:
    """Replays scripted reads: bytes, or an exception to raise; b"" once the script ends.

    A :class:`~llm_users.wire.http.ConnectionLike` without kernel stamps, read by its user
    (never by the poller)."""

    kernel_stamps = False
    stamped = False
    pollable = False

    def __init__(self, reads: Iterable[bytes | BaseException] = ()) -> None:
        self.reads = list(reads)
        self.recv_real: float | None = None
        self.connected = False
        self.sent: list[bytes] = []
        self.closes = 0
        self.recvs = 0
        self.idle_closed = False

    def script(self, reads: Iterable[bytes | BaseException]) -> None:
        self.reads = list(reads)

    def connect(self) -> None:
        self.connected = True

    def closed_while_idle(self) -> bool:
        return self.idle_closed

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, timeout: float | None) -> bytes:
        self.recvs += 1
        if not self.reads:
            return b""
        item = self.reads.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.closes += 1
        self.connected = False


def head(ctype: str = "text/event-stream", extra: str = "", status: str = "200 OK") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n{extra}\r\n"
    ).encode()


def chunked(*parts: bytes, end: bool = True) -> list[bytes]:
    out = [b"%x\r\n%s\r\n" % (len(p), p) for p in parts]
    return out + ([b"0\r\n\r\n"] if end else [])


def make(
    reads: Iterable[bytes | BaseException], endpoint: Endpoint = CHAT, **cfg: Any
) -> tuple[LLMClient, FakeConnection]:
    conn = FakeConnection(reads)
    return LLMClient(ClientConfig(origin=ORIGIN, endpoint=endpoint, **cfg), connection=conn), conn


def chat_body(stream: bool = True) -> dict[str, Any]:
    return CHAT.body("hi", model="m", max_tokens=16, stream=stream, stream_usage=True,
                     system_prompt=None, extra={})  # fmt: skip


# -- the seam ------------------------------------------------------------------------------


def test_a_scripted_stream_gives_every_token_and_the_usage() -> None:
    stream = vllm_chat_stream()
    client, conn = make([head(), *chunked(stream[:100], stream[100:])])
    rec = client.request(chat_body())
    assert rec.ok, rec.message
    assert rec.texts == CONTENT_TEXTS and rec.usage == USAGE and rec.finish_reason == "stop"
    assert rec.max_tokens == 16 and rec.status == 200
    assert conn.sent[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert conn.closes == 0  # the body ended cleanly: the connection is kept


def test_the_factory_builds_the_connection() -> None:
    made: list[tuple[Any, ...]] = []

    def factory(origin: Origin, ssl: Any, timeout: float) -> FakeConnection:
        made.append((origin, ssl, timeout))
        return FakeConnection()

    client = LLMClient(ClientConfig(origin=ORIGIN, endpoint=CHAT, connect_timeout=3.0),
                       "ctx", connection_factory=factory)  # fmt: skip
    assert made == [(ORIGIN, "ctx", 3.0)] and isinstance(client.conn, FakeConnection)


def test_an_idle_connection_closed_by_the_server_is_reopened_not_failed() -> None:
    stream = vllm_chat_stream()
    client, conn = make([])
    conn.connected, conn.idle_closed = True, True
    conn.script([head(), *chunked(stream)])
    rec = client.request(chat_body())
    assert rec.ok and conn.closes == 1 and conn.connected and len(conn.sent) == 1


# -- failure kinds ---------------------------------------------------------------------------


def test_failure_kinds_keep_their_strings() -> None:
    assert FailureKind.http(429) == "http_429"
    assert FailureKind.OVERSIZED == "oversized_response"
    assert FailureKind.RESET == "connection_reset" and f"{FailureKind.RESET}" == "connection_reset"
    rec = RequestRecord("chat", True, 0.0, 0.0).fail(FailureKind.CONNECT, "x")
    assert type(rec.failure) is str and json.dumps(rec.failure) == '"connect_error"'


@pytest.mark.parametrize(
    ("reads", "kind", "message"),
    [
        ([ConnectionResetError()], "connection_reset", "connection reset before any response"),
        ([b""], "connection_reset", "connection closed before any response"),
        ([b"HTTP/1.1 200 OK\r\n", b""], "connection_reset",
         "connection closed mid-response: connection closed before the end of the response"),
        ([head(), b"5\r\ndata:", b""], "connection_dropped", "connection closed mid-response"),
        ([head(), ConnectionResetError(104, "Connection reset by peer")], "connection_dropped",
         "connection reset (Connection reset by peer)"),
        ([head(), TimeoutError()], "first_token_timeout", "no first token within 120 s"),
    ],
)  # fmt: skip
def test_each_exception_is_one_failure_kind(reads: list[Any], kind: str, message: str) -> None:
    client, conn = make(reads)
    rec = client.request(chat_body())
    assert rec.failure == kind and rec.message is not None and rec.message.startswith(message)
    assert not conn.connected and rec.end is not None


def test_failure_of_uses_the_request_state() -> None:
    cfg = ClientConfig(origin=ORIGIN, endpoint=CHAT, first_token_timeout=5, request_timeout=9)
    rec = RequestRecord("chat", True, 0.0, 0.0)
    assert failure_of(TimeoutError(), rec, cfg, None) == (
        "connect_error", "connect timeout after 10 s")  # fmt: skip
    kind, msg = failure_of(ConnectionRefusedError(111, "Connection refused"), rec, cfg, None)
    assert (kind, msg) == (
        "connect_error",
        "cannot connect to http://127.0.0.1:9: Connection refused",
    )
    rec.start = 1.0
    assert failure_of(TimeoutError(), rec, cfg, 0)[0] == "first_token_timeout"  # type: ignore[index]
    rec.token_times.append(2.0)
    assert failure_of(TimeoutError(), rec, cfg, 0) == (
        "request_timeout", "request not complete within 9 s")  # fmt: skip
    rec.stream = False
    rec.token_times.clear()
    assert failure_of(TimeoutError(), rec, cfg, 0)[0] == "request_timeout"  # type: ignore[index]
    assert failure_of(Oversized("big"), rec, cfg, 0) == ("oversized_response", "big")
    rec.status = 200
    assert failure_of(client_mod.ConnectionCut("x"), rec, cfg, 10)[0] == "connection_dropped"  # type: ignore[index]
    assert failure_of(HTTPParseError("x"), rec, cfg, 10)[0] == "malformed_http"  # type: ignore[index]
    assert failure_of(RecursionError(), rec, cfg, 10)[0] == "malformed_response"  # type: ignore[index]
    assert failure_of(ValueError("a bug"), rec, cfg, 0) is None
    assert failure_of(gevent.GreenletExit(), rec, cfg, 0) is None


def test_a_bug_is_not_swallowed_and_the_connection_is_closed() -> None:
    client, conn = make([ValueError("a bug")])
    with pytest.raises(ValueError):
        client.request(chat_body())
    assert not conn.connected


# -- bounds ----------------------------------------------------------------------------------


def test_an_endless_sse_line_is_oversized_at_the_event_bound() -> None:
    piece = b"x" * 4096
    reads = [head(), b"%x\r\ndata: \r\n" % 6, *[b"%x\r\n%s\r\n" % (len(piece), piece)] * 400]
    client, conn = make(reads, max_event_bytes=1 << 20)
    rec = client.request(chat_body())
    assert rec.failure == "oversized_response" and not conn.connected
    assert rec.message is not None and rec.message.startswith("SSE event over 1048576 bytes (")
    assert conn.recvs < 270  # stopped soon after the bound (1 MiB / 4 KiB = 256 reads)


def test_endless_empty_data_lines_count_against_the_event_bound() -> None:
    piece = b"data:\n" * 1000
    reads = [head(), *[b"%x\r\n%s\r\n" % (len(piece), piece)] * 100]
    client, _ = make(reads, max_event_bytes=50_000)
    assert client.request(chat_body()).failure == "oversized_response"


def test_an_endless_json_body_is_oversized_at_the_body_bound() -> None:
    piece = b'{"a":1},' * 512
    reads = [head("application/json"), *[b"%x\r\n%s\r\n" % (len(piece), piece)] * 100]
    client, conn = make(reads, max_response_bytes=100_000)
    rec = client.request(chat_body(stream=False))
    assert rec.failure == "oversized_response" and not conn.connected
    assert rec.message is not None and rec.message.startswith("response body over 100000 bytes (")


def test_a_long_error_body_is_still_the_http_status() -> None:
    piece = b"<p>busy</p>" * 1000
    reads = [head("text/html", status="503 Busy"), *[b"%x\r\n%s\r\n" % (len(piece), piece)] * 20]
    client, conn = make(reads)
    rec = client.request(chat_body())
    assert rec.failure == "http_503" and rec.message is not None
    assert rec.message.startswith("HTTP 503: busy busy") and not conn.connected


def test_too_many_headers_are_oversized() -> None:
    many = "".join(f"X-H{i}: v\r\n" for i in range(101))
    client, conn = make([head(extra=many)])
    rec = client.request(chat_body())
    assert (rec.failure, rec.message) == ("oversized_response", "more than 100 response headers")


def test_a_huge_header_block_is_oversized() -> None:
    client, conn = make([b"HTTP/1.1 200 OK\r\nX-Big: ", *[b"y" * 8192] * 20])
    rec = client.request(chat_body())
    assert rec.failure == "oversized_response" and not conn.connected
    assert rec.message is not None and rec.message.startswith("response headers over 65536 bytes")


# -- fair reading ----------------------------------------------------------------------------


def test_a_user_whose_socket_always_has_data_yields_every_few_ms(monkeypatch) -> None:
    """A fake clock (1 ms per read) and a loop that never turns: a yield every 2-3 reads."""
    clock = iter(range(10**6))
    monkeypatch.setattr(client_mod, "_perf", lambda: next(clock) * 0.0005)
    yields: list[int] = []
    events = b"".join(b'data: {"choices":[{"delta":{"content":"t"}}]}\n\n' for _ in range(2))
    reads = [head(), *chunked(*[events] * 200)]
    client, conn = make(reads, max_output_factor=0)  # more events than max_tokens: no bound
    monkeypatch.setattr(client_mod, "_gsleep", lambda s: yields.append(conn.recvs))
    rec = client.request(chat_body())
    assert rec.failure == "truncated_stream"  # no finish_reason: fine, the reads are the point
    gaps = [b - a for a, b in zip(yields, yields[1:], strict=False)]
    assert len(yields) > 50 and max(gaps) <= 4


def test_other_greenlets_run_while_one_user_reads_a_long_burst() -> None:
    """Real gevent: 4 MB of events always ready; another greenlet still gets turns."""
    ev = b'data: {"choices":[{"delta":{"content":"t"}}]}\n\n'
    piece = ev * 1300  # ~64 KiB per read
    reads = [head(), *chunked(*[piece] * 60)]
    client, _ = make(reads, max_output_factor=0)  # more events than max_tokens: no bound
    ticks: list[int] = []

    def other() -> None:
        while True:
            ticks.append(1)
            gevent.sleep(0)

    g = gevent.spawn(other)
    gevent.sleep(0)
    ticks.clear()
    rec = client.request(chat_body())
    g.kill()
    assert len(rec.token_times) == 1300 * 60
    assert len(ticks) >= 5  # it ran (a yield every 2 ms of this ~0.1 s of work)


# -- the Responses API -----------------------------------------------------------------------


def resp_event(obj: dict[str, Any]) -> bytes:
    return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode()


RESP_USAGE = {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13,
              "input_tokens_details": {"cached_tokens": 2},
              "output_tokens_details": {"reasoning_tokens": 1}}  # fmt: skip
CHAT_USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13,
              "prompt_tokens_details": {"cached_tokens": 2},
              "completion_tokens_details": {"reasoning_tokens": 1}}  # fmt: skip


def responses_stream(end: dict[str, Any]) -> bytes:
    delta = {"item_id": "i", "output_index": 0, "content_index": 0}
    return b"".join(
        resp_event(o)
        for o in [
            {"type": "response.created", "response": {"id": "r", "status": "in_progress",
                                                      "error": None, "output": []}},
            {"type": "response.reasoning_summary_text.delta", "delta": "Plan. ",
             "item_id": "r0", "output_index": 0, "summary_index": 0},
            {"type": "response.reasoning_text.delta", "delta": "Think.", **delta},
            {"type": "response.output_item.added", "item": {"type": "message"}},
            {"type": "response.output_text.delta", "delta": "Hello", **delta},
            {"type": "response.output_text.delta", "delta": " world", **delta},
            {"type": "response.output_text.done", "text": "Hello world", **delta},
            end,
        ]
    )  # fmt: skip


def responses_body(stream: bool = True) -> dict[str, Any]:
    return RESPONSES.body("hi", model="m", max_tokens=16, stream=stream, stream_usage=True,
                          system_prompt="Be brief.", extra={})  # fmt: skip


def test_responses_stream_completed() -> None:
    end = {"type": "response.completed", "response": {"status": "completed", "usage": RESP_USAGE}}
    client, conn = make([head(), *chunked(responses_stream(end))], RESPONSES)
    rec = client.request(responses_body())
    assert rec.ok, rec.message
    assert rec.texts == ["Plan. ", "Think.", "Hello", " world"]
    assert rec.first_content_at == rec.token_times[2]  # reasoning first, then content
    assert rec.usage == CHAT_USAGE and rec.finish_reason == "stop" and rec.max_tokens == 16
    assert conn.sent[0].startswith(b"POST /v1/responses HTTP/1.1\r\n")
    sent = json.loads(conn.sent[0].split(b"\r\n\r\n", 1)[1])
    assert sent == {"model": "m", "input": "hi", "instructions": "Be brief.",
                    "max_output_tokens": 16, "stream": True}  # fmt: skip


def test_responses_stream_incomplete_is_length() -> None:
    end = {"type": "response.incomplete", "response": {
        "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
        "usage": RESP_USAGE}}  # fmt: skip
    client, _ = make([head(), *chunked(responses_stream(end))], RESPONSES)
    rec = client.request(responses_body())
    assert rec.ok and rec.finish_reason == "length" and rec.usage == CHAT_USAGE


@pytest.mark.parametrize(
    ("end", "message"),
    [
        ({"type": "response.failed", "response": {"status": "failed", "error": {
            "code": "server_error", "message": "The model crashed"}}},
         "The model crashed (code server_error)"),
        ({"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": None},
         "Slow down (code rate_limit_exceeded)"),
    ],
)  # fmt: skip
def test_responses_stream_failures_are_error_events(end: dict[str, Any], message: str) -> None:
    client, _ = make([head(), *chunked(responses_stream(end))], RESPONSES)
    rec = client.request(responses_body())
    assert (rec.failure, rec.message) == ("error_event", message)
    assert len(rec.token_times) == 4  # the tokens before the failure count for nothing


def test_responses_stream_without_its_end_event_is_truncated() -> None:
    stream = responses_stream({"type": "response.in_progress"})
    client, _ = make([head(), *chunked(stream)], RESPONSES)
    assert client.request(responses_body()).failure == "truncated_stream"


def test_responses_full_response() -> None:
    obj = {"id": "r", "object": "response", "status": "completed", "error": None,
           "output": [{"type": "reasoning", "content": [{"type": "reasoning_text",
                                                         "text": "Hmm. "}]},
                      {"type": "message", "role": "assistant",
                       "content": [{"type": "output_text", "text": "42", "annotations": []}]}],
           "usage": RESP_USAGE}  # fmt: skip
    raw = json.dumps(obj).encode()
    client, _ = make([head("application/json"), *chunked(raw)], RESPONSES)
    rec = client.request(responses_body(stream=False))
    assert rec.ok and rec.texts == ["Hmm. 42"] and rec.usage == CHAT_USAGE
    assert rec.finish_reason == "stop"


def test_responses_full_response_without_output_is_malformed() -> None:
    client, _ = make([head("application/json"), *chunked(b'{"id": "r"}')], RESPONSES)
    rec = client.request(responses_body(stream=False))
    assert (rec.failure, rec.message) == (
        "malformed_response",
        'no output in the response: {"id": "r"}',
    )
