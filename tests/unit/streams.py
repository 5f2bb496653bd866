"""Realistic SSE byte streams, shaped like what vLLM / OpenAI send, shared by the unit tests."""

from __future__ import annotations

import json
from typing import Any

CHAT_ID = "chatcmpl-7f3a"
CREATED = 1_700_000_000
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"

# The texts of the content chunks, in order: ASCII, Chinese (3-byte UTF-8) and an emoji
# (4-byte UTF-8), so that a split inside a multi-byte character is exercised.
CONTENT_TEXTS = ["Hello", " 世界", "! 🎉", " done"]
USAGE = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}


def _json(obj: Any) -> bytes:
    # ensure_ascii=False: real servers send raw UTF-8, not \u escapes
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def chat_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": CHAT_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def usage_chunk() -> dict[str, Any]:
    return {
        "id": CHAT_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [],
        "usage": dict(USAGE),
    }


def event(obj: Any) -> bytes:
    return b"data: " + _json(obj) + b"\n\n"


def vllm_chat_objects() -> list[dict[str, Any]]:
    """The JSON objects of a vLLM chat stream with stream_options.include_usage."""
    return [
        chat_chunk({"role": "assistant", "content": ""}),  # role-only first chunk
        *(chat_chunk({"content": t}) for t in CONTENT_TEXTS),
        chat_chunk({}, finish_reason="stop"),
        usage_chunk(),  # usage-only, empty choices
    ]


def vllm_chat_stream() -> bytes:
    """role chunk, 4 content chunks, finish_reason chunk, usage chunk, [DONE]."""
    return b"".join(event(o) for o in vllm_chat_objects()) + b"data: [DONE]\n\n"


def completions_stream() -> bytes:
    """A /v1/completions stream: text chunks, a finish chunk, usage, [DONE]."""
    base = {"id": "cmpl-1", "object": "text_completion", "created": CREATED, "model": MODEL}
    objs = [
        {**base, "choices": [{"index": 0, "text": t, "logprobs": None, "finish_reason": None}]}
        for t in ("Once", " upon", " a time")
    ]
    objs.append({**base, "choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
    objs.append({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3,
                                                  "total_tokens": 6}})  # fmt: skip
    return b"".join(event(o) for o in objs) + b"data: [DONE]\n\n"


def reasoning_stream() -> bytes:
    """A reasoning model: reasoning_content deltas first, then content."""
    objs = [
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk({"reasoning_content": "Let me think."}),
        chat_chunk({"reasoning_content": " Water boils at 100."}),
        chat_chunk({"content": "100 °C"}),
        chat_chunk({}, finish_reason="stop"),
    ]
    return b"".join(event(o) for o in objs) + b"data: [DONE]\n\n"
