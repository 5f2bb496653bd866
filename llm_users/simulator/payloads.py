"""JSON payloads in the OpenAI shapes: stream chunks, whole responses and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .vocab import VOCABS

ERROR_HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass(frozen=True)
class Job:
    """What one request asked for and what the simulator decided to answer."""

    rid: int
    chat: bool
    response_id: str
    created: int
    model: str
    prompt_tokens: int
    reasoning_tokens: int
    content_tokens: int
    finish_reason: str
    include_usage: bool = False
    reasoning_field: str = "reasoning_content"

    @property
    def completion_tokens(self) -> int:
        return self.reasoning_tokens + self.content_tokens

    def usage(self, completion_tokens: int | None = None) -> dict[str, int]:
        done = self.completion_tokens if completion_tokens is None else completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
        }


def token_texts(vocab: str, rid: int, count: int) -> list[str]:
    """``count`` token texts (" word"), a deterministic walk of the vocabulary per request."""
    words = VOCABS[vocab]
    start = (rid * 7919) % len(words)  # a prime stride so consecutive requests differ
    return [" " + words[(start + i) % len(words)] for i in range(count)]


def _chunk_object(job: Job) -> str:
    return "chat.completion.chunk" if job.chat else "text_completion"


def chunk_head(job: Job) -> bytes:
    """The serialised start of every chunk of ``job``, up to its ``created`` value."""
    head = {"id": job.response_id, "object": _chunk_object(job), "created": job.created}
    return orjson.dumps(head)[:-1]


def _chunk(job: Job, choices: list[dict[str, Any]], **extra: Any) -> bytes:
    head = {"id": job.response_id, "object": _chunk_object(job), "created": job.created}
    return orjson.dumps({**head, "model": job.model, "choices": choices, **extra})


def _choice(job: Job, delta: dict[str, Any], text: str, finish: str | None) -> dict[str, Any]:
    if job.chat:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}


def role_chunk(job: Job) -> bytes:
    """The role-only first chat chunk that vLLM sends before any token."""
    return _chunk(job, [_choice(job, {"role": "assistant", "content": ""}, "", None)])


def content_chunk(job: Job, text: str) -> bytes:
    return _chunk(job, [_choice(job, {"content": text}, text, None)])


def reasoning_chunk(job: Job, text: str) -> bytes:
    return _chunk(job, [_choice(job, {job.reasoning_field: text}, text, None)])


def finish_chunk(job: Job) -> bytes:
    return _chunk(job, [_choice(job, {}, "", job.finish_reason)])


def usage_chunk(job: Job) -> bytes:
    """The include_usage chunk: empty choices, whole-request usage."""
    return _chunk(job, [], usage=job.usage())


def full_response(job: Job, reasoning: str, content: str) -> bytes:
    """A whole non-streaming chat or text completion with usage."""
    if job.chat:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if job.reasoning_tokens:
            message[job.reasoning_field] = reasoning
        choice = {"index": 0, "message": message, "logprobs": None}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": content, "logprobs": None}
        obj = "text_completion"
    choice["finish_reason"] = job.finish_reason
    return orjson.dumps(
        {
            "id": job.response_id,
            "object": obj,
            "created": job.created,
            "model": job.model,
            "choices": [choice],
            "usage": job.usage(),
        }
    )


def error_json(message: str, kind: str, code: int) -> bytes:
    """An OpenAI-style error object."""
    return orjson.dumps({"error": {"message": message, "type": kind, "code": code}})
