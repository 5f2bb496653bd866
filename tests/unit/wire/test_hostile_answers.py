"""What a hostile or odd server sends, against the client with a scripted connection: every
answer ends as one classified record (never an escaped exception), within its bounds."""

from __future__ import annotations

import time

from llm_users.wire.endpoints import error_text

from .test_client import chat_body, chunked, head, make

TOKEN = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
END = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
DEEP = b"[" * 1100 + b"]" * 1100  # 2 KB: past orjson's 1,024 levels on every Python


def test_interim_1xx_heads_are_skipped_not_taken_for_the_answer() -> None:
    reads = [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + head(),
        *chunked(TOKEN, END),
    ]
    client, conn = make(reads)
    rec = client.request(chat_body())
    assert rec.ok and rec.status == 200 and rec.texts == ["x"], rec.message
    assert conn.closes == 0 and not conn.reads  # the whole answer was read: reusable


def test_a_101_is_not_waited_past_as_an_interim_one() -> None:
    """No upgrade is ever asked for: llhttp refuses the switch, and the request fails."""
    client, _ = make([b"HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0\r\n\r\n"])
    assert client.request(chat_body()).failure == "malformed_http"


def test_json_nested_too_deep_in_an_event_is_a_malformed_event() -> None:
    deep = b'data: {"choices":[{"delta":{"content":' + DEEP + b"}}]}\n\n"
    for reads in ([head(), *chunked(TOKEN, deep, END)], [head(), *chunked(TOKEN + deep + END)]):
        client, conn = make(reads)
        rec = client.request(chat_body())
        assert rec.failure == "malformed_event" and not conn.connected, rec.message


def test_json_nested_too_deep_in_an_error_body_or_event_keeps_the_status() -> None:
    body = b'{"error":' + DEEP + b"}"
    reads = [b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)]
    client, _ = make(reads)
    rec = client.request(chat_body())
    assert rec.failure == "http_500" and rec.message is not None
    error = b'data: {"error":' + DEEP + b"}\n\n"
    client, _ = make([head(), *chunked(TOKEN, error)])
    assert client.request(chat_body()).failure == "malformed_event"


def test_a_non_streamed_body_nested_too_deep_is_malformed() -> None:
    body = b'{"error":' + DEEP + b"}"
    client, _ = make([head("application/json"), *chunked(body)])
    assert client.request(chat_body(stream=False)).failure == "malformed_response"
    # Deep values where nothing is read are no harm: the answer is whole.
    within = b"[" * 1000 + b"]" * 1000  # under orjson's limit, past Python's up to 3.12
    body = b'{"choices":[{"message":{"content":"x"}}],"extra":' + within + b"}"
    client, _ = make([head("application/json"), *chunked(body)])
    assert client.request(chat_body(stream=False)).texts == ["x"]


def test_error_pages_are_stripped_in_linear_time() -> None:
    """A page of repeated "<script" against a plain page of the same size: the same order of
    time (a backtracking pattern took seconds on the first, milliseconds on the second)."""
    flood = b"<script" * (65536 // 7)
    plain = b"<p>word</p> " * (65536 // 12)

    def took(body: bytes) -> float:
        t0 = time.perf_counter()
        for _ in range(5):
            error_text(body)
        return time.perf_counter() - t0

    took(plain)
    assert took(flood) < 20 * took(plain) + 0.05
    assert error_text(b"<html><script>var a = '<b>';</script><h1>502 Bad</h1></html>") == "502 Bad"
    assert error_text(b"<style>p{}</style>Oops <b>here") == "Oops here"
    assert error_text(b"<<<<" * 20000).startswith("<<<<")  # no tag at all: kept, clipped


def test_endless_trailers_are_oversized() -> None:
    trailers = [b"X-Trailer-%d: %s\r\n" % (i, b"v" * 100) for i in range(10_000)]
    client, conn = make([head(), b"%x\r\n%s\r\n" % (len(TOKEN), TOKEN), b"0\r\n", *trailers])
    rec = client.request(chat_body())
    assert rec.failure == "oversized_response" and "trailers" in (rec.message or "")
    assert len(conn.reads) > 9_000  # stopped near the bound, not at the end of the script


def test_one_endless_trailer_line_is_oversized() -> None:
    reads = [head(), *chunked(TOKEN, end=False), b"0\r\nX-T: ", *[b"v" * 8192] * 1000]
    client, conn = make(reads)
    rec = client.request(chat_body())
    assert rec.failure == "oversized_response" and len(conn.reads) > 900


def test_a_stream_past_its_max_tokens_multiple_is_oversized() -> None:
    """max_tokens 16, factor 4: past 4 x 16 + 64 events the stream fails, read by read."""
    reads = [head(), *chunked(*[TOKEN * 10] * 1000, end=False)]
    client, conn = make(reads)
    rec = client.request(chat_body())
    assert rec.failure == "oversized_response", rec.message
    assert "128 events" in (rec.message or "") and "--max-output-factor" in (rec.message or "")
    assert 128 < rec.events <= 138 and len(conn.reads) > 900
    client, _ = make([head(), *chunked(*[TOKEN * 10] * 20, END)], max_output_factor=0)
    assert client.request(chat_body()).ok  # 0: no bound from max_tokens


def test_a_stream_past_its_byte_bound_is_oversized() -> None:
    comments = b": keep-alive " + b"." * 8000 + b"\n"  # no event at all: only bytes
    reads = [head(), *chunked(*[comments] * 200, end=False)]
    client, conn = make(reads, max_response_bytes=1 << 20)
    rec = client.request(chat_body())
    assert rec.failure == "oversized_response" and "bytes" in (rec.message or "")
    assert len(conn.reads) > 50


def test_framing_errors_have_their_own_kind() -> None:
    for bad in (b"zz\r\nab\r\n", b"2\r\nabc\r\n"):
        client, conn = make([head(), *chunked(TOKEN, end=False), bad])
        rec = client.request(chat_body())
        assert rec.failure == "malformed_http", (bad, rec.failure)
        assert not conn.connected
    client, _ = make([b"garbage\r\n\r\n"])
    assert client.request(chat_body()).failure == "malformed_http"


def test_a_reused_connection_closed_unanswered_is_sent_again_once() -> None:
    client, conn = make([head(), *chunked(TOKEN, END)])
    assert client.request(chat_body()).ok and conn.connected
    conn.script([b"", head(), *chunked(TOKEN, END)])  # closed after the answer, no FIN seen
    rec = client.request(chat_body())
    assert rec.ok and rec.retries == 1, rec.message
    assert len(conn.sent) == 3 and conn.sent[1] == conn.sent[2]
    # Once only: a second close on the fresh connection fails the request.
    conn.script([ConnectionResetError(), b""])
    rec = client.request(chat_body())
    assert rec.failure == "connection_reset" and rec.retries == 1 and len(conn.sent) == 5


def test_a_fresh_connection_closed_unanswered_is_not_sent_again() -> None:
    client, conn = make([b""])
    rec = client.request(chat_body())
    assert rec.failure == "connection_reset" and rec.retries == 0 and len(conn.sent) == 1


def test_a_reused_connection_cut_after_some_bytes_is_not_sent_again() -> None:
    client, conn = make([head(), *chunked(TOKEN, END)])
    client.request(chat_body())
    conn.script([b"HTTP/1.1 2", b""])
    rec = client.request(chat_body())
    assert rec.failure == "connection_reset" and rec.retries == 0 and len(conn.sent) == 2
