"""OpenAI shapes: what a streamed chunk carries, request bodies, error objects."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_users.wire.endpoints import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    ENDPOINTS,
    MESSAGES,
    RERANK,
    RESPONSES,
    BadShape,
    Chunk,
    Full,
    error_message,
)
from llm_users.wire.sse import SSEParser

from ..streams import (
    CONTENT_TEXTS,
    USAGE,
    chat_chunk,
    completions_stream,
    reasoning_stream,
    usage_chunk,
    vllm_chat_stream,
)


def chunks_of(stream: bytes, endpoint: Any = CHAT) -> list[Chunk]:
    """Parse a whole stream the way the client does: SSE events -> JSON -> Chunk."""
    out = []
    for ev in SSEParser().feed(stream):
        if ev.data == b"[DONE]":
            break
        out.append(endpoint.chunk(json.loads(ev.data)))
    return out


# -- chat chunks ---------------------------------------------------------------------------


def test_role_only_chunk_carries_no_text() -> None:
    assert CHAT.chunk(chat_chunk({"role": "assistant"})) == Chunk(None, False, None, None)
    assert CHAT.chunk(chat_chunk({"role": "assistant", "content": ""})).text is None


def test_empty_content_and_empty_delta_carry_no_text() -> None:
    assert CHAT.chunk(chat_chunk({"content": ""})) == Chunk(None, False, None, None)
    assert CHAT.chunk(chat_chunk({"content": None})).text is None
    assert CHAT.chunk(chat_chunk({})).text is None
    assert CHAT.chunk({"choices": [{"index": 0, "delta": None}]}).text is None


def test_content_is_text_and_content() -> None:
    assert CHAT.chunk(chat_chunk({"content": "Hello"})) == Chunk("Hello", True, None, None)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_is_text_but_not_content(field: str) -> None:
    c = CHAT.chunk(chat_chunk({field: "Let me think", "content": None}))
    assert c == Chunk("Let me think", False, None, None)


def test_reasoning_and_content_in_one_delta() -> None:
    c = CHAT.chunk(chat_chunk({"reasoning_content": "think. ", "content": "Answer"}))
    assert c.text == "think. Answer"
    assert c.content is True


def test_empty_reasoning_with_content() -> None:
    c = CHAT.chunk(chat_chunk({"reasoning_content": "", "content": "x"}))
    assert c == Chunk("x", True, None, None)


def test_finish_reason_chunk() -> None:
    c = CHAT.chunk(chat_chunk({}, finish_reason="stop"))
    assert c == Chunk(None, False, "stop", None)
    c = CHAT.chunk(chat_chunk({"content": "end"}, finish_reason="length"))
    assert c == Chunk("end", True, "length", None)


def test_usage_only_chunk_with_empty_choices() -> None:
    assert CHAT.chunk(usage_chunk()) == Chunk(None, False, None, USAGE)


def test_usage_on_a_chunk_with_choices_is_kept() -> None:
    obj = {**chat_chunk({"content": "x"}, finish_reason="stop"), "usage": USAGE}
    assert CHAT.chunk(obj) == Chunk("x", True, "stop", USAGE)


def test_empty_object_and_null_usage_carry_nothing() -> None:
    assert CHAT.chunk({}) == Chunk(None, False, None, None)
    assert CHAT.chunk({"choices": [], "usage": None}) == Chunk(None, False, None, None)


def test_the_whole_vllm_stream() -> None:
    chunks = chunks_of(vllm_chat_stream())
    assert len(chunks) == 7
    assert chunks[0].text is None  # role-only first chunk: not the first token
    assert [c.text for c in chunks[1:5]] == CONTENT_TEXTS
    assert all(c.content for c in chunks[1:5])
    assert chunks[5] == Chunk(None, False, "stop", None)
    assert chunks[6] == Chunk(None, False, None, USAGE)


def test_the_whole_reasoning_stream() -> None:
    chunks = chunks_of(reasoning_stream())
    texts = [(c.text, c.content) for c in chunks if c.text]
    assert texts == [("Let me think.", False), (" Water boils at 100.", False), ("100 °C", True)]
    assert chunks[-1].finish_reason == "stop"


# -- completions chunks --------------------------------------------------------------------


def test_completions_chunks() -> None:
    chunks = chunks_of(completions_stream(), COMPLETIONS)
    assert [c.text for c in chunks] == ["Once", " upon", " a time", None, None]
    assert [c.content for c in chunks[:3]] == [True, True, True]
    assert chunks[3] == Chunk(None, False, "length", None)
    assert chunks[4].usage == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_completions_empty_text_is_no_text() -> None:
    c = COMPLETIONS.chunk({"choices": [{"index": 0, "text": "", "finish_reason": None}]})
    assert c == Chunk(None, False, None, None)


# -- full (non-streamed) responses ---------------------------------------------------------


def test_chat_full_text_joins_reasoning_and_content() -> None:
    obj = {"choices": [{"message": {"role": "assistant", "reasoning_content": "Hmm. ",
                                    "content": "42"}}]}  # fmt: skip
    assert CHAT.full_text(obj) == "Hmm. 42"
    assert CHAT.full_text({"choices": [{"message": {"content": "only"}}]}) == "only"
    assert CHAT.full_text({"choices": []}) == ""
    assert CHAT.full_text({"choices": [{"message": {"content": None}}]}) == ""


def test_completions_full_text() -> None:
    assert COMPLETIONS.full_text({"choices": [{"text": "abc"}]}) == "abc"
    assert COMPLETIONS.full_text({"choices": []}) == ""


# -- request bodies ------------------------------------------------------------------------


def body(endpoint: Any = CHAT, prompt: Any = "Hi", **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(model="m", max_tokens=64, stream=True, stream_usage=True,
                                system_prompt="You are a helpful assistant.", extra={})  # fmt: skip
    args.update(kw)
    return endpoint.body(prompt, **args)


def test_chat_body_with_system_prompt() -> None:
    assert body() == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hi"},
        ],
        "max_tokens": 64,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_chat_body_without_system_prompt() -> None:
    assert body(system_prompt="")["messages"] == [{"role": "user", "content": "Hi"}]
    assert body(system_prompt=None)["messages"] == [{"role": "user", "content": "Hi"}]


def test_messages_list_prompt_gets_the_system_prompt_first_without_mutating_it() -> None:
    messages = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "Q2"}]  # fmt: skip
    original = [dict(m) for m in messages]
    b = body(prompt=messages)
    assert b["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    assert b["messages"][1:] == original
    assert messages == original  # the caller's list is untouched


def test_messages_list_with_its_own_system_message_is_left_alone() -> None:
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Q"}]
    assert body(prompt=messages)["messages"] == messages


def test_stream_options_only_when_streaming_with_usage() -> None:
    assert "stream_options" not in body(stream=False)
    assert body(stream=False)["stream"] is False
    assert "stream_options" not in body(stream=True, stream_usage=False)


def test_max_tokens_none_is_not_sent() -> None:
    assert "max_tokens" not in body(max_tokens=None)


def test_extra_is_merged_last_and_wins() -> None:
    extra = {"temperature": 0.01, "top_p": 0.3, "max_tokens": 5, "stream_options": None,
             "ignore_eos": True}  # fmt: skip
    b = body(extra=extra)
    assert b["max_tokens"] == 5
    assert b["stream_options"] is None
    assert b["ignore_eos"] is True
    assert (b["temperature"], b["top_p"]) == (0.01, 0.3)


def test_completions_body() -> None:
    assert body(COMPLETIONS, "Once upon", stream=False) == {
        "model": "m", "prompt": "Once upon", "max_tokens": 64, "stream": False,
    }  # fmt: skip


def test_completions_body_flattens_a_messages_prompt() -> None:
    messages = [{"role": "user", "content": "line 1"}, {"role": "user", "content": "line 2"}]
    assert body(COMPLETIONS, messages)["prompt"] == "line 1\nline 2"


def test_endpoints() -> None:
    assert ENDPOINTS == {
        "chat": CHAT, "completions": COMPLETIONS, "responses": RESPONSES, "messages": MESSAGES,
        "embeddings": EMBEDDINGS, "rerank": RERANK,
    }  # fmt: skip
    assert CHAT.path == "/v1/chat/completions"
    assert COMPLETIONS.path == "/v1/completions"
    assert EMBEDDINGS.path == "/v1/embeddings" and RERANK.path == "/v1/rerank"


# -- embeddings and rerank -----------------------------------------------------------------


def test_embeddings_body_is_a_list_of_texts_and_never_streams() -> None:
    body = EMBEDDINGS.body(["a", [{"role": "user", "content": "b"}], "c"], model="m",
                           max_tokens=128, stream=True, stream_usage=True, system_prompt="s",
                           extra={})  # fmt: skip
    assert body == {"model": "m", "input": ["a", "b", "c"]}
    assert EMBEDDINGS.body("ping", model="m", max_tokens=1, stream=False, stream_usage=False,
                           system_prompt=None, extra={})["input"] == ["ping"]  # fmt: skip


def test_rerank_body_is_a_query_and_its_documents() -> None:
    body = RERANK.body(["q", "d1", "d2"], model="m", max_tokens=None, stream=False,
                       stream_usage=False, system_prompt=None, extra={"top_n": 1})  # fmt: skip
    assert body == {"model": "m", "query": "q", "documents": ["d1", "d2"], "top_n": 1}


def test_pooling_answers_give_their_items_and_usage_as_prompt_tokens() -> None:
    emb = {"data": [{"embedding": [0.1]}, {"embedding": [0.2]}],
           "usage": {"prompt_tokens": 7, "total_tokens": 7}}  # fmt: skip
    assert EMBEDDINGS.on_full(emb) == Full(
        "", None, {"prompt_tokens": 7, "total_tokens": 7}, None, 2
    )
    ranked = {"results": [{"index": 1, "relevance_score": 0.9}], "usage": {"total_tokens": 12}}
    full = RERANK.on_full(ranked)
    assert full.items == 1 and full.usage == {"prompt_tokens": 12, "total_tokens": 12}


@pytest.mark.parametrize(
    ("endpoint", "answer"),
    [("embeddings", {"data": [{"index": 0}]}), ("embeddings", {"object": "list"}),
     ("rerank", {"results": [{"index": 0}]}), ("rerank", {"results": "x"})],
)  # fmt: skip
def test_pooling_answers_without_their_shape_are_bad(endpoint: str, answer: dict) -> None:
    with pytest.raises(BadShape):
        ENDPOINTS[endpoint].on_full(answer)


# -- error objects -------------------------------------------------------------------------


def test_openai_error_object() -> None:
    obj = {"error": {"message": "The model `x` does not exist.", "type": "invalid_request_error",
                     "param": None, "code": "model_not_found"}}  # fmt: skip
    assert error_message(obj) == "The model `x` does not exist. (code model_not_found)"


def test_vllm_streamed_error_object_with_a_numeric_code() -> None:
    obj = {"error": {"object": "error", "message": "max_tokens is too large",
                     "type": "BadRequestError", "param": None, "code": 400}}  # fmt: skip
    assert error_message(obj) == "max_tokens is too large (code 400)"


def test_error_without_code_or_message() -> None:
    assert error_message({"error": {"message": "boom", "code": None}}) == "boom"
    assert error_message({"error": {"message": "boom", "code": ""}}) == "boom"
    assert error_message({"error": {"type": "server_error"}}) == "server_error"
    assert error_message({"error": "plain string"}) == "plain string"


@pytest.mark.parametrize(
    "obj",
    [
        chat_chunk({"content": "x"}),
        {"choices": [{"delta": {}}], "error": None},  # a chunk that happens to have the key
        {"choices": [], "usage": USAGE, "error": None},  # a usage chunk with a null error
        {"error": None},
        [{"error": "in a list"}],
        "error",
        None,
        {},
    ],
)
def test_not_an_error(obj: Any) -> None:
    assert error_message(obj) is None


# -- the Responses API ---------------------------------------------------------------------


def test_responses_body_with_a_text_prompt() -> None:
    system = "You are a helpful assistant."
    assert body(RESPONSES) == {"model": "m", "input": "Hi", "max_output_tokens": 64,
                               "stream": True, "instructions": system}  # fmt: skip
    assert "max_output_tokens" not in body(RESPONSES, max_tokens=None)
    assert RESPONSES.max_tokens_key == "max_output_tokens" and RESPONSES.path == "/v1/responses"


def test_responses_body_with_messages_keeps_their_own_system_message() -> None:
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    b = body(RESPONSES, prompt=msgs, stream=False)
    assert b["input"] == msgs and b["input"] is not msgs and "instructions" not in b
    assert b["stream"] is False and "stream_options" not in b


def test_responses_event_shapes() -> None:
    on = RESPONSES.on_event
    delta = {"item_id": "i", "output_index": 0, "content_index": 0}
    text = json.dumps({"type": "response.output_text.delta", "delta": "Hi", **delta}).encode()
    assert on(text, b"response.output_text.delta") == Chunk("Hi", True, None, None)
    reason = json.dumps({"type": "response.reasoning_text.delta", "delta": "Hm", **delta})
    assert on(reason.encode(), b"") == Chunk("Hm", False, None, None)
    empty = json.dumps({"type": "response.output_text.delta", "delta": "", **delta})
    assert on(empty.encode(), b"") == Chunk(None, False, None, None)
    created = {"type": "response.created", "response": {"error": None, "output": []}}
    assert on(json.dumps(created).encode(), b"") == Chunk(None, False, None, None)
    done = {"type": "response.completed", "response": {"usage": {"input_tokens": 1,
            "output_tokens": 2, "total_tokens": 3}}}  # fmt: skip
    c = on(json.dumps(done).encode(), b"response.completed")
    assert c.done and c.finish_reason == "stop"
    assert c.usage == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert on(b'{"type": "error", "message": "boom", "code": null}', b"error").error == "boom"


# -- Anthropic's Messages API --------------------------------------------------------------


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    """A Messages stream as Anthropic writes it: an event line, then its data."""
    return b"".join(
        f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode() for kind, data in events
    )


def messages_chunks(stream: bytes) -> list[Chunk]:
    """Every event through the endpoint's own stream handler, as the client calls it."""
    return [MESSAGES.on_event(ev.data, ev.event) for ev in SSEParser().feed(stream)]


def delta(index: int, kind: str, **fields: str) -> tuple[str, dict[str, Any]]:
    body = {"type": "content_block_delta", "index": index, "delta": {"type": kind, **fields}}
    return "content_block_delta", body


START = ("message_start", {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m",
    "stop_reason": None, "stop_sequence": None,
    "usage": {"input_tokens": 25, "output_tokens": 1}}})  # fmt: skip
THINKING_STREAM = sse(
    START,
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "thinking", "thinking": ""}}),
    ("ping", {"type": "ping"}),
    delta(0, "thinking_delta", thinking="Let me"),
    delta(0, "thinking_delta", thinking=" think"),
    delta(0, "signature_delta", signature="EqQB"),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1,
                             "content_block": {"type": "text", "text": ""}}),
    delta(1, "text_delta", text="Hello"),
    delta(1, "text_delta", text="!"),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta",
                       "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": 15}}),
    ("message_stop", {"type": "message_stop"}),
)  # fmt: skip


def test_messages_stream_thinking_is_reasoning_text_is_content() -> None:
    chunks = messages_chunks(THINKING_STREAM)
    texts = [(c.text, c.content) for c in chunks if c.text]
    assert texts == [("Let me", False), (" think", False), ("Hello", True), ("!", True)]
    assert [c.done for c in chunks].count(True) == 1 and chunks[-1].done  # message_stop
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert all(c.error is None for c in chunks)


def test_messages_usage_is_split_over_start_and_delta() -> None:
    usages = [c.usage for c in messages_chunks(THINKING_STREAM) if c.usage]
    # message_start: the input tokens only (its output_tokens 1 is not the answer's count)
    assert usages == [{"prompt_tokens": 25}, {"completion_tokens": 15}]


def test_messages_cached_input_tokens_count_in_the_prompt() -> None:
    usage = {"input_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 3,
             "output_tokens": 1}  # fmt: skip
    c = MESSAGES.chunk({"type": "message_start", "message": {"usage": usage}})
    assert c.usage == {"prompt_tokens": 108, "prompt_tokens_details": {"cached_tokens": 100}}


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"),
     ("tool_use", "tool_calls"), ("refusal", "refusal")],
)  # fmt: skip
def test_messages_stop_reasons(reason: str, finish: str) -> None:
    c = MESSAGES.chunk({"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {}})
    assert c.finish_reason == finish and not c.done


def test_messages_error_event_fails_the_stream() -> None:
    data = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    [c] = messages_chunks(sse(("error", data)))
    assert c.error == "Overloaded" and c.text is None and not c.done


def test_messages_events_without_text() -> None:
    for kind in ("ping", "content_block_stop", "content_block_start"):
        assert MESSAGES.chunk({"type": kind, "index": 0}) == Chunk(None, False, None, None)
    assert MESSAGES.chunk(delta(0, "text_delta", text="")[1]).text is None
    assert MESSAGES.chunk(delta(0, "input_json_delta", partial_json="{")[1]).text is None
    with pytest.raises(BadShape):
        MESSAGES.on_event(b"not json", b"content_block_delta")


def test_messages_whole_answer() -> None:
    obj = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
           "content": [{"type": "thinking", "thinking": "Hm. ", "signature": "x"},
                       {"type": "text", "text": "Hi"}],
           "stop_reason": "max_tokens",
           "usage": {"input_tokens": 7, "output_tokens": 9}}  # fmt: skip
    full = MESSAGES.on_full(obj)
    assert full.text == "Hm. Hi" and full.finish_reason == "length"
    assert full.usage == {"prompt_tokens": 7, "completion_tokens": 9}
    with pytest.raises(BadShape):
        MESSAGES.on_full({"type": "message", "choices": []})


def test_messages_body_moves_system_messages_to_the_top() -> None:
    assert body(MESSAGES) == {"model": "m", "messages": [{"role": "user", "content": "Hi"}],
                              "system": "You are a helpful assistant.", "max_tokens": 64,
                              "stream": True}  # fmt: skip
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
            {"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}]  # fmt: skip
    b = body(MESSAGES, prompt=msgs, stream=False)
    assert b["system"] == "S" and b["messages"] == msgs[1:] and "stream_options" not in b
    assert "system" not in body(MESSAGES, system_prompt=None)


def test_messages_headers_carry_the_key_as_x_api_key() -> None:
    assert MESSAGES.auth("sk-a") == (("x-api-key", "sk-a"), ("anthropic-version", "2023-06-01"))
    assert MESSAGES.auth("") == (("anthropic-version", "2023-06-01"),)
    assert CHAT.auth("sk-a") == (("Authorization", "Bearer sk-a"),) and CHAT.auth("") == ()
