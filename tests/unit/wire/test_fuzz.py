"""Property-based fuzzing of what a server sends: the SSE parser, the event decoders and
the HTTP framing path. Random bytes, random cuts, deep nesting: no exception escapes, the
kinds are right. ``HYPOTHESIS_PROFILE=long`` runs 10,000 examples each instead of 300."""

from __future__ import annotations

import contextlib
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_users.record import FailureKind
from llm_users.wire.endpoints import CHAT, COMPLETIONS, RESPONSES, BadShape, error_text
from llm_users.wire.sse import SSEParser

from .test_client import chat_body, head, make

settings.register_profile(
    "default", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

KINDS = {str(k) for k in FailureKind} | {f"http_{n}" for n in range(100, 600)}
TOKEN = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
END = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'

sse_pieces = st.sampled_from(
    [b"data: ", b"data:", b"\n", b"\r\n", b"\r", b": c\n", b"event: error\n", b"id: 1\n",
     b"retry: 5\n", b"{", b"}", b"[DONE]", TOKEN, END, b'{"choices":[]}', b"\xff", b"\xc3"]
)  # fmt: skip
sse_bytes = st.one_of(st.binary(max_size=2000), st.lists(sse_pieces, max_size=60).map(b"".join))


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points})
    out, last = [], 0
    for m in [*marks, len(data)]:
        out.append(data[last:m])
        last = m
    return [p for p in out if p]


def nested(depth: int, opener: bytes) -> bytes:
    closer = b"]" if opener == b"[" else b"}"
    inner = b'{"a":' if opener == b"{" else b"["
    return inner * depth + b"1" * (opener == b"{") + closer * depth


@given(sse_bytes, st.lists(st.integers(min_value=0), max_size=8))
def test_the_sse_parser_gives_the_same_events_however_the_bytes_are_cut(data, points):
    whole = SSEParser().feed(data)
    parser = SSEParser()
    events = [e for piece in cuts(data, points) for e in parser.feed(piece)]
    assert [e.data for e in events] == [e.data for e in whole]
    assert parser.buffered >= 0 and parser.held >= parser.buffered


json_ish = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=20,
)
decodable = st.one_of(
    st.binary(max_size=500),
    st.builds(lambda d, o: nested(d, o), st.integers(0, 3000), st.sampled_from([b"[", b"{"])),
    json_ish.map(lambda v: __import__("orjson").dumps({"choices": [{"delta": {"content": v}}]})),
    json_ish.map(lambda v: __import__("orjson").dumps({"error": v})),
    json_ish.map(lambda v: __import__("orjson").dumps(v)),
)


@given(decodable, st.sampled_from([b"", b"error", b"message"]))
def test_the_event_decoders_raise_nothing_but_a_bad_shape(raw, event):
    for ep in (CHAT, COMPLETIONS, RESPONSES):
        with contextlib.suppress(BadShape, RecursionError):  # (the client classifies both)
            ep.on_event(raw, event)
        if ep.on_batch is not None:
            with contextlib.suppress(BadShape, RecursionError):
                ep.on_batch([raw, raw])


@given(decodable)
def test_error_text_never_raises_and_stays_short(body):
    text = error_text(body)
    assert isinstance(text, str) and len(text) <= 203


heads = st.sampled_from(
    [head(), head("application/json"), head(status="500 Oops"), b"HTTP/1.1 100 Continue\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\n", b"garbage\r\n"]
)  # fmt: skip
bodies = st.one_of(
    st.binary(max_size=1500),
    st.lists(
        st.sampled_from([TOKEN, END, b"0\r\n\r\n", b"zz\r\n", b"X-T: 1\r\n", b"\r\n"])
        | sse_bytes.map(lambda b: b"%x\r\n%s\r\n" % (len(b), b)),
        max_size=20,
    ).map(b"".join),
)


@given(heads, bodies, st.lists(st.integers(min_value=0), max_size=6), st.booleans())
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_the_framing_path_ends_every_answer_in_one_known_kind(first, body, points, stream):
    client, conn = make(cuts(first + body, points))
    rec = client.request(chat_body(stream=stream))
    assert rec.ok or rec.failure in KINDS, (rec.failure, rec.message)
    assert rec.ok == (rec.failure is None) and rec.end is not None
    assert rec.failure != "connection_reset" or rec.status == 0
