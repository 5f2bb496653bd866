"""The fast path of the choices endpoints' event handlers gives what the general handler
gives, on every shape: the same Chunk, or the same BadShape message."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from llm_users.protocol import (
    CHAT,
    COMPLETIONS,
    BadShape,
    _chat_chunk,
    _completion_chunk,
    json_events,
)

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
FINISH: list[Any] = [None, "stop", "length", 7]
USAGE: list[Any] = [None, {"prompt_tokens": 3, "completion_tokens": 2}, 9]


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
