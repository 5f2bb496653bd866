"""The fast path of the choices endpoints' event handlers gives what the general handler
gives, on every shape: the same Chunk, or the same BadShape message."""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

import orjson
import pytest

import llm_users.wire.client as client_mod
from llm_users.wire.endpoints import (
    CHAT,
    COMPLETIONS,
    BadShape,
    _chat_chunk,
    _completion_chunk,
    json_events,
)
from llm_users.wire.fastevents import choices_batch

from .test_client import chat_body, chunked, head, make

DELTAS: list[Any] = [
    {"content": "hi"},
    {"content": ""},
    {"content": None},
    {"role": "assistant", "content": ""},
    {},
    None,
    {"content": 5},
    {"content": ["a"]},
    {"reasoning_content": "think", "content": None},
    {"reasoning_content": "think", "content": "x"},
    {"reasoning": "think"},
    {"reasoning_content": None, "reasoning": "r", "content": "c"},
    {"reasoning_content": 3, "content": "c"},
    {"reasoning_content": "", "content": "c"},
    "not a dict",
]
FINISH: list[Any] = [None, "stop", "length", "", 7]
USAGE: list[Any] = [None, {"prompt_tokens": 3, "completion_tokens": 2}, 9, {}, 0]


def chat_objects() -> list[Any]:
    objs: list[Any] = []
    for delta, finish, usage in itertools.product(DELTAS, FINISH, USAGE):
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        objs.append({"id": "c", "object": "chat.completion.chunk", "choices": [choice]})
        if usage is not None:
            objs[-1]["usage"] = usage
    return objs


def completion_objects() -> list[Any]:
    texts: list[Any] = ["hi", "", None, 5]
    return [
        {"object": "text_completion", "choices": [{"text": t, "finish_reason": f}], "usage": u}
        for t, f, u in itertools.product(texts, FINISH, USAGE)
    ]


COMMON: list[Any] = [
    {"choices": []},
    {"choices": [], "usage": {"completion_tokens": 1}},
    {"choices": None},
    {"choices": {"0": {}}},
    {"choices": [None]},
    {"choices": [1]},
    {"choices": [{}]},
    {"error": {"message": "boom", "code": 500}},
    {"object": "error", "message": "bad", "code": 400},
    {"error": None, "choices": [{"delta": {"content": "x"}}]},
    {"choices": [{"delta": {"content": "x"}}], "error": {"message": "both"}},
    {"choices": [{"delta": {"content": "x"}, "text": "x"}], "metrics": {"mean_itl_ms": 2.5}},
    {"choices": [], "usage": {"completion_tokens": 1}, "metrics": {"queue_time_ms": 1}},
    {"choices": [{"delta": {"content": "x"}, "text": "x"}], "metrics": {"note": "no numbers"}},
    [1, 2],
    "text",
    3,
]
RAW: list[bytes] = [
    b"[DONE]",
    b"",
    b"{not json",
    b'{"choices":[{"delta":{"content":"x"}}]} trailing',
    b'{"choices":[{"delta":{"content":"x"}}],"x":"\xff"}',
    b'{"choices":[{"delta":{"content":"\\ud800"}}]}',
    b'{"choices":[{"delta":{"content":"\xc3\xa9t\xc3\xa9"}}]}',
    b'{"choices":[{"delta":{"content":"a","content":"b"}}]}',
    b'{"choices":[{"delta":{"content":"\\u00e9\\n\\"q\\""}}]}',
    b' {"choices":[{"delta":{"content":"lead"}}]}',
    # non-ASCII where the typed decoder reads and where it skips: valid, then each way
    # UTF-8 can be invalid (a stray byte, overlong, an encoded surrogate, cut short)
    b'{"choices":[{"delta":{"content":"\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89"}}]}',
    b'{"model":"m\xc3\xa9","choices":[{"delta":{"content":"x"}}]}',
    b'{"choices":[{"delta":{"content":"\xc0\xaf"}}]}',
    b'{"model":"\xc0\xaf","choices":[{"delta":{"content":"x"}}]}',
    b'{"model":"\xed\xa0\x80","choices":[{"delta":{"content":"x"}}]}',
    b'{"choices":[{"delta":{"content":"\xed\xa0\x80"}}]}',
    b'{"model":"\xe4\xb8","choices":[{"delta":{"content":"x"}}]}',
    b'{"choices":[{"text":"\xe4\xb8\x96","delta":{"content":"\xe7\x95\x8c"}}]}',
    b'{"choices":[{"delta":{"content":"x"}}],"x":"\xff\xfe"}',
]
EVENTS = [b"", b"error", b"message"]


def outcome(handler: Any, raw: bytes, event: bytes) -> Any:
    try:
        return handler(raw, event)
    except BadShape as exc:
        return ("BadShape", str(exc))


@pytest.mark.parametrize(
    ("fast", "chunk_of", "objects"),
    [
        (CHAT.on_event, _chat_chunk, chat_objects()),
        (COMPLETIONS.on_event, _completion_chunk, completion_objects()),
    ],
    ids=["chat", "completions"],
)
def test_fast_path_gives_what_the_general_handler_gives(
    fast: Any, chunk_of: Any, objects: list[Any]
) -> None:
    general = json_events(chunk_of)
    raws = [orjson.dumps(o) for o in [*objects, *COMMON]] + RAW
    for raw, event in itertools.product(raws, EVENTS):
        assert outcome(fast, raw, event) == outcome(general, raw, event), (raw, event)


def test_the_fast_path_reads_the_common_event() -> None:
    raw = b'{"id":"x","choices":[{"index":0,"delta":{"content":" hi"},"finish_reason":null}]}'
    chunk = CHAT.on_event(raw, b"")
    assert (chunk.text, chunk.content, chunk.finish_reason, chunk.done) == (
        " hi",
        True,
        None,
        False,
    )


def test_a_number_past_double_range_where_nothing_is_read_is_accepted() -> None:
    """The one known difference: orjson refuses 1e999 anywhere; the typed decoder skips the
    fields it does not read, and the JSON grammar allows any number, so the event counts."""
    raw = b'{"choices":[{"delta":{"content":"x"}}],"x":1e999}'
    assert CHAT.on_event(raw, b"").text == "x"
    with pytest.raises(BadShape):
        json_events(_chat_chunk)(raw, b"")


# -- a read of many events in one call (choices_batch) -------------------------------------


def _batch_pool(objects: list[Any]) -> list[bytes]:
    """Every event shape above as a data line's payload ([DONE], errors, bad JSON...)."""
    raws = [orjson.dumps(o) for o in [*objects, *COMMON]] + RAW + [b"[DONE]"] * 3
    return [r for r in raws if b"\n" not in r and b"\r" not in r]


def _record(endpoint: Any, pieces: list[bytes], monkeypatch: Any) -> tuple[Any, ...]:
    """The record a stream read in these pieces gives; each read on its own clock tick."""
    ticks = itertools.count(1.0)
    monkeypatch.setattr(client_mod, "_perf", lambda: next(ticks))
    client, _ = make([head(), *chunked(*pieces)], endpoint=endpoint)
    rec = client.request(chat_body())
    return (
        rec.failure, rec.message, rec.texts, rec.token_times, rec.events, rec.first_content_at,
        rec.end, rec.finish_reason, rec.usage, rec.server_timing,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(120))
@pytest.mark.parametrize("endpoint", [CHAT, COMPLETIONS], ids=["chat", "completions"])
def test_a_read_of_many_events_gives_the_record_reading_them_one_by_one_gives(
    endpoint: Any, seed: int, monkeypatch: Any
) -> None:
    """The batch handler against the per-event loop alone (``on_batch=None``), on random
    streams of every shape, cut at random places: the same record, to the last field."""
    rng = random.Random(seed)
    objects = chat_objects() if endpoint is CHAT else completion_objects()
    pool = _batch_pool(objects)
    common = [o for o in objects[:40] if rng.random() < 0.5] or objects[:1]
    lines = []
    for _ in range(rng.randint(1, 60)):
        if rng.random() < 0.7:  # mostly runs of the common chunk, as a real stream
            lines.append(b"data: " + orjson.dumps(rng.choice(common)) + b"\n\n")
        elif rng.random() < 0.9:
            lines.append(b"data: " + rng.choice(pool) + b"\n\n")
        else:
            lines.append(b"event: error\ndata: " + rng.choice(pool) + b"\n\n")
    stream = b"".join(lines)
    cut = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(0, 5))))
    edges = [0, *cut, len(stream)]
    random_cuts = [stream[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
    one_by_one = dataclasses.replace(endpoint, on_batch=None)
    for pieces in ([stream], random_cuts, lines):
        batched = _record(endpoint, pieces, monkeypatch)
        assert batched == _record(one_by_one, pieces, monkeypatch), (seed, pieces)


def test_a_burst_of_common_chunks_is_taken_in_one_call() -> None:
    """The point of the batch: a run of token chunks never reaches the per-event handler;
    the first event that ends the stream is left to it, with the rest."""
    calls: list[bytes] = []

    def one(raw: bytes, event: bytes) -> Any:
        calls.append(raw)
        return CHAT.on_event(raw, event)

    batch = choices_batch(one, BadShape, chat=True)
    tokens = [b'{"choices":[{"delta":{"content":"t%d"}}]}' % i for i in range(50)]
    usage = b'{"choices":[],"usage":{"completion_tokens":50}}'
    run = batch([*tokens, usage, b"[DONE]", tokens[0]])
    assert run.taken == 51 and run.texts == [f"t{i}" for i in range(50)] and run.content
    assert run.usage == {"completion_tokens": 50} and run.finish_reason is None
    assert calls == [usage, b"[DONE]"]  # the usage-only object and the end: per event
