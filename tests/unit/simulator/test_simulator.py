"""The simulator against raw sockets and urllib: shapes, knobs, faults and ground truth."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest
import sseclient

from llm_users.simulator import SimulatorProcess
from llm_users.simulator.process import SimulatorError
from llm_users.simulator.tokenizer import count_tokens
from llm_users.simulator.vocab import VOCABS

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


# --- a tiny raw HTTP/1.1 client: every recv() is kept, chunked framing is checked ---------


@dataclass
class Raw:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    frames: list[bytes] = field(default_factory=list)  # chunked-encoding chunk payloads
    complete: bool = False  # the body ended properly (terminator or full Content-Length)
    recvs: list[tuple[float, bytes]] = field(default_factory=list)
    sent_at: float = 0.0
    error: Exception | None = None

    def json(self):
        return json.loads(self.body)

    def data(self) -> list[str]:
        """The ``data`` of every SSE event (test-local parser)."""
        text = self.body.decode().replace("\r\n", "\n").replace("\r", "\n")
        out = []
        for block in text.split("\n\n"):
            lines = [ln[5:] for ln in block.split("\n") if ln.startswith("data:")]
            if lines:
                out.append("\n".join(ln[1:] if ln.startswith(" ") else ln for ln in lines))
        return out

    def chunks(self) -> list[dict]:
        return [json.loads(d) for d in self.data() if d != "[DONE]"]

    def contents(self) -> list[str]:
        """Content of each token-carrying chat/completion chunk."""
        out = []
        for c in self.chunks():
            if not c.get("choices"):
                continue
            choice = c["choices"][0]
            text = choice["delta"].get("content") if "delta" in choice else choice["text"]
            if text:
                out.append(text)
        return out


def request(sim, path, body=None, *, raw_body=None, method="POST", timeout=5.0) -> Raw:
    payload = raw_body if raw_body is not None else json.dumps(body or {}).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    out = Raw()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=timeout) as s:
        out.sent_at = time.perf_counter()
        s.sendall(head.encode() + payload)
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError as exc:
                out.error = exc
                break
            if not data:
                break
            out.recvs.append((time.perf_counter(), data))
    _parse(out, b"".join(d for _, d in out.recvs))
    return out


def _parse(out: Raw, raw: bytes) -> None:
    if b"\r\n\r\n" not in raw:
        return
    head, rest = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    out.status = int(lines[0].split()[1])
    for line in lines[1:]:
        name, _, value = line.partition(":")
        out.headers[name.strip().lower()] = value.strip()
    if out.headers.get("transfer-encoding") != "chunked":
        out.body = rest
        out.complete = len(rest) == int(out.headers.get("content-length", -1))
        return
    while b"\r\n" in rest:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            out.complete = rest == b"\r\n"
            break
        if len(rest) < size + 2:
            break
        out.frames.append(rest[:size])
        rest = rest[size + 2 :]
    out.body = b"".join(out.frames)


def chat(max_tokens=5, stream=True, usage=False, **extra):
    body = {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}], **extra}
    body.update(max_tokens=max_tokens, stream=stream)
    if usage:
        body["stream_options"] = {"include_usage": True}
    return body


def get_json(sim, path):
    with urllib.request.urlopen(sim.url + path, timeout=5) as resp:
        return resp.status, resp.headers, json.loads(resp.read())


# `server` and `sim` (the shared fast simulator, reset for each test) come from conftest.py


# --- endpoints and shapes -------------------------------------------------------------------


def test_models_list(sim):
    status, _, body = get_json(sim, "/v1/models")
    assert status == 200
    assert body == {
        "object": "list",
        "data": [{"id": "sim-model", "object": "model", "owned_by": "llm-users-simulator"}],
    }


def test_chat_non_streaming_shape_and_usage(sim):
    prompt = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi !"}]
    r = request(sim, CHAT, {"model": "sim-model", "messages": prompt, "max_tokens": 7})
    assert r.status == 200 and r.complete
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion" and body["model"] == "sim-model"
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "length"
    assert count_tokens(choice["message"]["content"]) == 7
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}


def test_completions_non_streaming_shape(sim):
    r = request(sim, COMPLETIONS, {"model": "", "prompt": ["one two", "three"], "max_tokens": 3})
    body = r.json()
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion"
    assert count_tokens(body["choices"][0]["text"]) == 3
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_chat_stream_events(sim):
    r = request(sim, CHAT, chat(max_tokens=4, usage=True))
    assert r.status == 200 and r.complete
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["transfer-encoding"] == "chunked"
    data = r.data()
    assert data[-1] == "[DONE]"
    chunks = r.chunks()
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["finish_reason"] for c in chunks[1:5]] == [None] * 4
    assert chunks[5]["choices"][0]["finish_reason"] == "length"
    assert chunks[6]["choices"] == []
    assert chunks[6]["usage"] == {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}
    assert len(chunks) == 7
    rec = sim.records()[-1]
    assert rec["response_id"] == chunks[0]["id"]
    assert all(c[0] == " " and c[1:] in VOCABS["en"] for c in r.contents())
    assert len(r.contents()) == rec["events"] == 4


def test_stream_parses_with_reference_sseclient(sim):
    r = request(sim, CHAT, chat(max_tokens=3, vocab="mixed"))
    events = list(sseclient.SSEClient(iter([r.body])).events())
    assert [e.data for e in events] == r.data()
    assert len(events) == 1 + 3 + 1 + 1  # role, tokens, finish, [DONE]


def test_no_usage_chunk_unless_asked(sim):
    r = request(sim, CHAT, chat(max_tokens=3))
    assert all("usage" not in c for c in r.chunks())


def test_completions_stream_shape(sim):
    body = {"prompt": "x", "max_tokens": 3, "stream": True}
    body["stream_options"] = {"include_usage": True}
    r = request(sim, COMPLETIONS, body)
    chunks = r.chunks()
    assert all(c["object"] == "text_completion" and c["id"].startswith("cmpl-") for c in chunks)
    assert len(r.contents()) == 3  # no role chunk on completions
    assert chunks[3]["choices"][0]["finish_reason"] == "length"
    assert chunks[4]["choices"] == [] and chunks[4]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(
    ("output_tokens", "max_tokens", "expected", "finish"),
    [(5, 10, 5, "stop"), (5, 3, 3, "length"), (0, 4, 4, "length"), (0, None, 64, "stop")],
)
def test_output_length_and_finish_reason(sim, output_tokens, max_tokens, expected, finish):
    sim.configure(output_tokens=output_tokens)
    body = chat(max_tokens=max_tokens, stream=False)
    if max_tokens is None:
        del body["max_tokens"]
    r = request(sim, CHAT, body)
    assert r.json()["usage"]["completion_tokens"] == expected
    assert r.json()["choices"][0]["finish_reason"] == finish


def test_max_completion_tokens_is_honoured(sim):
    body = chat(stream=False)
    del body["max_tokens"]
    body["max_completion_tokens"] = 2
    assert request(sim, CHAT, body).json()["usage"]["completion_tokens"] == 2


def test_tokens_per_chunk(sim):
    sim.configure(tokens_per_chunk=3)
    r = request(sim, CHAT, chat(max_tokens=10))
    assert [count_tokens(t) for t in r.contents()] == [3, 3, 3, 1]
    assert sim.records()[-1]["tokens_per_event"] == [3, 3, 3, 1]


@pytest.mark.parametrize("field_name", ["reasoning_content", "reasoning"])
def test_reasoning_tokens(sim, field_name):
    sim.configure(reasoning_tokens=2, reasoning_field=field_name)
    r = request(sim, CHAT, chat(max_tokens=5, usage=True))
    deltas = [c["choices"][0]["delta"] for c in r.chunks() if c["choices"]]
    assert [set(d) for d in deltas[1:6]] == [{field_name}] * 2 + [{"content"}] * 3
    assert r.chunks()[-1]["usage"]["completion_tokens"] == 5
    rec = sim.records()[-1]
    assert rec["events"] == 5 and rec["completion_tokens"] == 5
    unary = request(sim, CHAT, chat(max_tokens=5, stream=False)).json()
    assert count_tokens(unary["choices"][0]["message"][field_name]) == 2
    assert count_tokens(unary["choices"][0]["message"]["content"]) == 3


# --- stream-shape knobs change the raw bytes --------------------------------------------------


def test_line_endings(sim):
    sim.configure(line_ending="crlf")
    crlf = request(sim, CHAT, chat(max_tokens=2)).body
    assert crlf.count(b"\r\n\r\n") == 5 and b"\n\n" not in crlf.replace(b"\r\n", b"")
    sim.configure(line_ending="cr")
    cr = request(sim, CHAT, chat(max_tokens=2)).body
    assert b"\n" not in cr and cr.count(b"\r\r") == 5
    assert len(request(sim, CHAT, chat(max_tokens=2)).data()) == 5


def test_no_space_comments_and_fields(sim):
    sim.configure(no_space=True, comments=True, fields=True)
    r = request(sim, CHAT, chat(max_tokens=2))
    blocks = r.body.split(b"\n\n")[:-1]
    assert len(blocks) == 5
    assert blocks[0].split(b"\n")[:4] == [b": ping", b"event:message", b"id:1", b"retry:3000"]
    assert blocks[1].split(b"\n")[:3] == [b": ping", b"event:message", b"id:2"]
    assert all(b.split(b"\n")[-1].startswith(b"data:{") for b in blocks[:-1])
    assert b"retry" not in b"".join(blocks[1:])
    assert r.data()[-1] == "[DONE]" and len(r.contents()) == 2


def test_empty_deltas(sim):
    sim.configure(empty_deltas=True)
    r = request(sim, CHAT, chat(max_tokens=3))
    contents = [c["choices"][0]["delta"].get("content") for c in r.chunks()[1:-1]]
    assert contents[1::2] == ["", "", ""] and all(contents[0::2])
    assert sim.records()[-1]["events"] == 3  # empty deltas carry no token


def test_keepalive_comments_before_first_token(sim):
    sim.configure(keepalive_ms=10, ttft_ms=65)
    r = request(sim, CHAT, chat(max_tokens=2))
    head, _, tail = r.body.partition(b'"content":" ')
    assert 4 <= head.count(b": keep-alive\n\n") <= 7
    assert b"keep-alive" not in tail


def test_split_bytes_pieces_arrive_separately(sim):
    sim.configure(split_bytes=4, split_delay_ms=1, vocab="emoji", role_chunk=False)
    r = request(sim, CHAT, chat(max_tokens=3))
    assert r.complete and all(len(f) <= 4 for f in r.frames)
    assert len(r.recvs) > len(r.body) // 4 // 2  # most pieces are their own recv()
    assert r.frames[0] == b"data"  # the prefix itself is cut
    broken = 0
    for f in r.frames:
        try:
            f.decode()
        except UnicodeDecodeError:
            broken += 1
    assert broken > 0  # some pieces end inside a multi-byte character
    assert len(r.contents()) == 3 and r.data()[-1] == "[DONE]"


def test_merge_events(sim):
    sim.configure(merge_events=4, role_chunk=False)
    r = request(sim, CHAT, chat(max_tokens=8))
    # 8 tokens + finish + [DONE] = 10 events in writes of 4, 4 and 2.
    assert [f.count(b"data: ") for f in r.frames] == [4, 4, 2]
    assert len(r.contents()) == 8


def test_burst_writes_whole_stream_at_once(sim):
    sim.configure(burst=True, ttft_ms=20)
    r = request(sim, CHAT, chat(max_tokens=300, usage=True))
    assert len(r.frames) == 2  # the role chunk, then everything else in one write
    assert r.frames[1].count(b"data: ") == 300 + 3 and r.frames[1].endswith(b"[DONE]\n\n")
    rec = sim.records()[-1]
    assert len(set(rec["token_times"])) == 1 and len(rec["token_times"]) == 300
    assert rec["first_token_at"] - rec["received_at"] >= 0.019
    assert rec["done_at"] - rec["first_token_at"] < 0.05  # not paced token by token


def test_no_done(sim):
    sim.configure(no_done=True)
    r = request(sim, CHAT, chat(max_tokens=2, usage=True))
    assert r.complete and "[DONE]" not in r.data()
    assert r.chunks()[-1]["usage"]["completion_tokens"] == 2
    assert sim.records()[-1]["completed"] is True


# --- faults ------------------------------------------------------------------------------------


def test_http_error_json_html_empty(sim):
    sim.configure(fault="http_error")
    r = request(sim, CHAT, chat())
    assert r.status == 500 and r.json()["error"]["code"] == 500
    sim.configure(error_status=502, error_body="html")
    r = request(sim, CHAT, chat())
    assert r.status == 502 and r.headers["content-type"].startswith("text/html")
    assert r.body == b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    sim.configure(error_status=503, error_body="empty")
    r = request(sim, CHAT, chat())
    assert r.status == 503 and r.body == b"" and r.headers["content-length"] == "0"
    assert sim.stats()["by_fault"] == {"http_error": 3}


def test_rate_limit(sim):
    sim.configure(fault="rate_limit", fault_first=2)
    statuses = [request(sim, CHAT, chat(stream=False)) for _ in range(3)]
    assert [r.status for r in statuses] == [429, 429, 200]
    assert statuses[0].headers["retry-after"] == "1"
    assert statuses[0].json()["error"]["code"] == 429


def test_fault_every(sim):
    sim.configure(fault="http_error", fault_every=2)
    assert [request(sim, CHAT, chat()).status for _ in range(4)] == [200, 500, 200, 500]
    assert [r["fault"] for r in sim.records()] == [None, "http_error", None, "http_error"]


def test_fault_rate_and_fault_list(sim):
    sim.configure(faults=["http_error", "rate_limit"], fault_rate=0.5, seed=7)
    statuses = [request(sim, CHAT, chat(stream=False)).status for _ in range(30)]
    assert {200, 429, 500} == set(statuses)
    stats = sim.stats()
    assert stats["faulted"] == statuses.count(429) + statuses.count(500)
    assert stats["by_fault"] == {
        "http_error": statuses.count(500),
        "rate_limit": statuses.count(429),
    }


def test_error_event(sim):
    sim.configure(fault="error_event", fault_after=3)
    r = request(sim, CHAT, chat(max_tokens=10))
    assert r.status == 200 and r.complete
    assert len(r.contents()) == 3
    assert json.loads(r.data()[-1]) == {
        "error": {"message": "simulated failure", "type": "server_error", "code": 500}
    }
    rec = sim.records()[-1]
    assert rec["completed"] is False and rec["fault"] == "error_event"


def test_bad_json_then_normal_stream(sim):
    sim.configure(fault="bad_json", fault_after=2)
    r = request(sim, CHAT, chat(max_tokens=4))
    data = r.data()
    assert data[3] == "this is not json" and data[-1] == "[DONE]"
    assert len([d for d in data if d.startswith("{")]) == 1 + 4 + 1


def test_drop_leaves_chunked_body_incomplete(sim):
    sim.configure(fault="drop", fault_after=2)
    r = request(sim, CHAT, chat(max_tokens=10))
    assert r.status == 200 and not r.complete
    assert b"[DONE]" not in r.body and b'"content":" ' in r.body
    rec = sim.records()[-1]
    assert rec["completed"] is False and rec["events"] == 2


def test_truncate_ends_cleanly_without_finish(sim):
    sim.configure(fault="truncate", fault_after=3)
    r = request(sim, CHAT, chat(max_tokens=10))
    assert r.complete and len(r.contents()) == 3
    assert "[DONE]" not in r.data()
    assert all(c["choices"][0]["finish_reason"] is None for c in r.chunks())


def test_stall_sends_headers_then_waits(sim):
    sim.configure(fault="stall", stall_ms=150)
    r = request(sim, CHAT, chat(max_tokens=2))
    headers_at = r.recvs[0][0] - r.sent_at
    first_token_at = next(t for t, d in r.recvs if b'"content":" ' in d) - r.sent_at
    assert headers_at < 0.1 and first_token_at >= 0.15
    assert r.data()[-1] == "[DONE]"


def test_reset_without_response(sim):
    sim.configure(fault="reset")
    r = request(sim, CHAT, chat())
    assert r.recvs == [] and r.status == 0
    assert r.error is None or isinstance(r.error, ConnectionResetError)
    assert sim.records()[-1]["fault"] == "reset"


@pytest.mark.parametrize(
    ("fault", "status", "complete"),
    [
        ("drop", 0, False),
        ("truncate", 200, True),
        ("bad_json", 200, True),
        ("error_event", 500, True),
    ],
)
def test_non_streaming_faults(sim, fault, status, complete):
    sim.configure(fault=fault)
    r = request(sim, CHAT, chat(max_tokens=5, stream=False))
    assert r.status == status and r.complete == complete
    if status == 200:
        with pytest.raises(ValueError):
            r.json()


# --- request validation ------------------------------------------------------------------------


def test_unknown_model_is_404(sim):
    r = request(sim, CHAT, {**chat(), "model": "gpt-9"})
    assert r.status == 404
    assert r.json() == {
        "error": {
            "message": "The model `gpt-9` does not exist.",
            "type": "NotFoundError",
            "code": 404,
        }
    }
    assert request(sim, CHAT, {**chat(stream=False), "model": ""}).status == 200


def test_invalid_json_is_400(sim):
    r = request(sim, CHAT, raw_body=b"{not json")
    assert r.status == 400 and r.json()["error"]["code"] == 400
    assert request(sim, CHAT, {"messages": "nope"}).status == 400


# --- ground truth --------------------------------------------------------------------------------


def test_record_timestamps_match_config(sim):
    sim.configure(ttft_ms=30, itl_ms=10)
    prompt = "alpha beta gamma ! 你好"
    body = chat(max_tokens=12, messages=[{"role": "user", "content": prompt}])
    jitter = sleep_overshoot_s()  # how late a sleep wakes on this machine, now
    request(sim, CHAT, body)
    jitter = max(jitter, sleep_overshoot_s())
    rec = sim.records()[-1]
    assert rec["received_at"] <= rec["headers_sent_at"] <= rec["first_token_at"] <= rec["done_at"]
    assert rec["token_times"][0] == rec["first_token_at"]
    assert len(rec["token_times"]) == rec["events"] == rec["completion_tokens"] == 12
    assert rec["prompt_tokens"] == 5 and rec["status"] == 200 and rec["completed"] is True
    late = [t - rec["received_at"] - (0.030 + 0.010 * i) for i, t in enumerate(rec["token_times"])]
    assert min(late) >= -0.0005  # never early
    # and sleep overshoot does not accumulate (beyond one late wake-up of a busy machine)
    assert statistics.median(late) < 0.004 + jitter
    gaps = [b - a for a, b in zip(rec["token_times"], rec["token_times"][1:], strict=False)]
    assert abs(statistics.mean(gaps) - 0.010) < 0.002 + 2 * jitter / len(gaps)


def sleep_overshoot_s(n: int = 20, nap: float = 0.005) -> float:
    """The 90th percentile of how late ``n`` short sleeps of this process wake up."""
    late = []
    for _ in range(n):
        t = time.perf_counter()
        time.sleep(nap)
        late.append(time.perf_counter() - t - nap)
    return sorted(late)[n * 9 // 10 - 1]


def _read_response(s: socket.socket) -> Raw:
    """One keep-alive response (Content-Length framing) off ``s``."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += s.recv(65536)
    head = raw.split(b"\r\n\r\n", 1)[0].decode().lower()
    length = int(head.split("content-length:")[1].split("\r\n")[0])
    while len(raw.split(b"\r\n\r\n", 1)[1]) < length:
        raw += s.recv(65536)
    out = Raw()
    _parse(out, raw)
    return out


def test_the_clock_starts_when_the_first_bytes_arrive(sim):
    """received_at is the request's arrival at the socket, not its handler's start: a request
    whose body comes 150 ms after its head is stamped at the head, and its first token is due
    ttft_ms after that."""
    sim.configure(ttft_ms=300, itl_ms=1)
    payload = json.dumps(chat(max_tokens=3)).encode()
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
        sent_at = time.perf_counter()
        s.sendall(head)
        time.sleep(0.15)
        s.sendall(payload)
        while s.recv(65536):
            pass
    rec = sim.records()[-1]
    assert rec["status"] == 200
    assert 0 <= rec["received_at"] - sent_at < 0.01
    assert rec["dispatched_at"] - rec["received_at"] >= 0.14
    assert 0.3 <= rec["first_token_at"] - rec["received_at"] < 0.31


def test_each_request_on_a_kept_alive_connection_gets_its_own_arrival(sim):
    """A GET in between, then a second POST after a pause: each is stamped when it was sent,
    never with a stamp left over from an earlier request on the connection."""
    sim.configure(ttft_ms=1, itl_ms=1)
    payload = json.dumps(chat(max_tokens=2, stream=False)).encode()
    post = (
        f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    get = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    sent = []
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
        for data in (post, get, post):
            time.sleep(0.1)
            sent.append(time.perf_counter())
            s.sendall(data)
            assert _read_response(s).status == 200
    first, second = [r for r in sim.records() if r["path"] == CHAT][-2:]
    assert 0 <= first["received_at"] - sent[0] < 0.01
    assert 0 <= second["received_at"] - sent[2] < 0.01


def test_records_ring_buffer_keeps_counters_exact(sim):
    sim.configure(max_records=3, record_tokens=False)
    for _ in range(5):
        request(sim, CHAT, chat(max_tokens=2))
    records = sim.records()
    assert [r["id"] for r in records] == [3, 4, 5]
    assert records[0]["token_times"] is None and records[0]["events"] == 2
    stats = sim.stats()
    assert stats["requests"] == 5 and stats["completed"] == 5 and stats["in_flight"] == 0


def test_reset_clears_records_and_ids(sim):
    before = request(sim, CHAT, chat(stream=False)).json()["choices"][0]["message"]["content"]
    assert (
        request(sim, CHAT, chat(stream=False)).json()["choices"][0]["message"]["content"] != before
    )
    sim.reset()
    assert sim.records() == [] and sim.stats()["requests"] == 0
    after = request(sim, CHAT, chat(stream=False)).json()["choices"][0]["message"]["content"]
    assert sim.records()[0]["id"] == 1
    assert after == before  # the token sequence is a function of the request id


def test_runtime_config(sim):
    sim.configure(ttft_ms=1, itl_ms=1, model_name="other")
    assert sim.config()["model_name"] == "other"
    assert get_json(sim, "/v1/models")[2]["data"][0]["id"] == "other"
    assert request(sim, CHAT, chat()).status == 404  # "sim-model" is no longer served
    with pytest.raises(SimulatorError, match="bogus_knob"):
        sim.configure(bogus_knob=1)
    with pytest.raises(SimulatorError, match="tokens_per_chunk"):
        sim.configure(tokens_per_chunk=0)
    assert sim.config()["ttft_ms"] == 1


def test_client_disconnect_is_recorded(sim):
    sim.configure(itl_ms=5)
    with socket.create_connection(("127.0.0.1", sim.port)) as s:
        payload = json.dumps(chat(max_tokens=200)).encode()
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(payload), payload)
        )
        s.recv(1000)
    deadline = time.monotonic() + 5
    while sim.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    rec = sim.records()[-1]
    assert rec["client_disconnected"] is True and rec["completed"] is False
    assert rec["events"] < 200


# --- tokenizer and process ---------------------------------------------------------------------


def test_tokenizer_folder_loads_offline(tmp_path):
    out = tmp_path / "tok"
    cmd = [sys.executable, "-m", "llm_users.simulator", "--write-tokenizer", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    words = [w for vocab in VOCABS.values() for w in vocab]
    check = (
        "import json, sys\n"
        "from transformers import AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "words = json.loads(sys.argv[2])\n"
        "n = [len(tok(' ' + w, add_special_tokens=False)['input_ids']) for w in words]\n"
        "whole = len(tok(''.join(' ' + w for w in words), add_special_tokens=False)['input_ids'])\n"
        "print(json.dumps([len(tok(' alpha beta', add_special_tokens=False)['input_ids']),\n"
        "                  sorted(set(n)), whole, tok.unk_token_id]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", check, str(out), json.dumps(words)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    two, per_word, whole, unk = json.loads(proc.stdout.strip().splitlines()[-1])
    assert two == 2 and per_word == [1] and whole == len(words) and unk == 0


def test_process_reports_startup_failure():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        sim = SimulatorProcess(port=busy.getsockname()[1])
        with pytest.raises(SimulatorError, match="exited before listening"):
            sim.start()
    with pytest.raises(ValueError, match="no_such_knob"):
        SimulatorProcess(no_such_knob=1)


def test_urllib_errors_are_plain_http(sim):
    req = urllib.request.Request(sim.url + CHAT, data=b"[]", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 400


def test_cli_module_serves_with_flags_over_config_json():
    cmd = [sys.executable, "-m", "llm_users.simulator", "--port", "0", "--ttft-ms", "1"]
    cmd += [
        "--config-json",
        json.dumps({"output_tokens": 9, "vocab": "zh"}),
        "--output-tokens",
        "2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("listening on http://127.0.0.1:"), proc.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sim/config", timeout=5) as resp:
            config = json.loads(resp.read())
        assert config["output_tokens"] == 2 and config["vocab"] == "zh" and config["ttft_ms"] == 1
        # llm_users/__init__ imports locust (gevent); the server must run on plain asyncio.
        with open(f"/proc/{proc.pid}/maps") as maps:
            assert "gevent" not in maps.read()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0


def test_the_simulator_measures_its_own_loop_lag_since_reset(sim):
    """Its stamps are as late as its loop: /sim/stats says how late (tests add it)."""
    sim.reset()
    first = sim.stats()["loop_lag_ms"]
    time.sleep(0.3)  # the monitor wakes every 5 ms: some 60 samples
    lag = sim.stats()["loop_lag_ms"]
    assert lag["count"] >= 20 and lag["count"] > first["count"]
    assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"]
    sim.reset()
    assert sim.stats()["loop_lag_ms"]["count"] < lag["count"]  # afresh


def test_help_gives_every_knob_its_own_help_and_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import dataclasses

    from llm_users.simulator.__main__ import build_parser
    from llm_users.simulator.config import SimConfig

    parser = build_parser()
    by_dest = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(SimConfig):
        text = by_dest[f.name].help or ""
        help_text, _, default = text.rpartition(" (default: ")
        assert help_text.strip(), (f.name, "no help")
        assert default == f"{f.default!r})", f.name
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all("--" + f.name.replace("_", "-") in out for f in dataclasses.fields(SimConfig))
