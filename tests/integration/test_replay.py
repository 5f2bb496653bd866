"""The client against bytes a real server sent (captured from `transformers serve`), replayed
over a local socket: framing, SSE, protocol and classification on real-world input."""

from __future__ import annotations

from pathlib import Path

import gevent
import pytest
from gevent.server import StreamServer

from llm_users.measure.per_request import result_of
from llm_users.wire.client import ClientConfig, LLMClient
from llm_users.wire.endpoints import CHAT, COMPLETIONS
from llm_users.wire.http import Origin

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "realserver"


def _replay(name: str) -> StreamServer:
    raw = (FIXTURES / f"{name}.response.http").read_bytes()

    def handle(sock, _addr):
        buf = b""
        while b"\r\n\r\n" not in buf:  # read the request head (the body is small, ignore it)
            buf += sock.recv(65536)
        gevent.sleep(0.001)
        for i in range(0, len(raw), 512):  # in pieces, as a network would deliver them
            sock.sendall(raw[i : i + 512])
        sock.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    return server


def _request(name: str, endpoint=CHAT, stream=True):
    server = _replay(name)
    try:
        origin = Origin.parse(f"http://127.0.0.1:{server.server_port}")
        client = LLMClient(ClientConfig(origin=origin, endpoint=endpoint))
        body = endpoint.body(
            "hi",
            model="m",
            max_tokens=24,
            stream=stream,
            stream_usage=True,
            system_prompt=None,
            extra={},
        )
        rec = client.request(body)
        client.close()
        return rec
    finally:
        server.stop()


def _count_words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize("name", ["chat_stream", "chat_stream_include_usage"])
def test_chat_stream_without_done_is_complete(name):
    rec = _request(name)
    assert rec.ok, rec.message
    res = result_of(rec, _count_words)  # the tiny model's tokenizer: one word per token
    assert rec.usage["completion_tokens"] == len(rec.token_times) == res.output_tokens
    assert rec.finish_reason in ("length", "stop")
    assert res.follow_tokens == res.output_tokens - 1
    assert rec.texts[0].strip()  # the role-only first chunk was not taken as the first token


def test_completions_stream():
    rec = _request("completions_stream", endpoint=COMPLETIONS)
    assert rec.ok, rec.message
    assert rec.usage["completion_tokens"] == len(rec.token_times)


def test_non_streaming_usage():
    rec = _request("chat_nonstream", stream=False)
    assert rec.ok and rec.usage["total_tokens"] == (
        rec.usage["prompt_tokens"] + rec.usage["completion_tokens"]
    )


def test_error_inside_a_200_stream():
    rec = _request("error_mid_stream")
    assert rec.failure in ("error_event", "malformed_event"), rec.failure
    assert rec.message


@pytest.mark.parametrize(
    ("name", "status"),
    [("error_repetition_penalty", 422), ("error_bad_model", 400), ("error_empty_model", 400)],
)
def test_fastapi_error_bodies_give_their_detail(name, status):
    rec = _request(name)
    assert rec.failure == f"http_{status}"
    assert "detail" not in rec.message and len(rec.message) > 12
