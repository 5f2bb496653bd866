"""JSON payloads in the OpenAI and Anthropic shapes: stream chunks, whole responses and errors."""

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
    cached_tokens: int = 0  # prompt tokens found in the prefix cache
    cache_details: bool = False  # report them (usage.prompt_tokens_details)
    responses: bool = False  # a Responses API request (/v1/responses)
    messages: bool = False  # an Anthropic Messages API request (/v1/messages)

    @property
    def completion_tokens(self) -> int:
        return self.reasoning_tokens + self.content_tokens

    def usage(self, completion_tokens: int | None = None) -> dict[str, Any]:
        done = self.completion_tokens if completion_tokens is None else completion_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
        }
        if self.cache_details:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return usage

    def responses_usage(self) -> dict[str, Any]:
        """Usage in the Responses API's names."""
        return {
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def messages_usage(self, output_tokens: int | None = None) -> dict[str, Any]:
        """Usage in the Messages API's names: input_tokens leaves out the cached ones."""
        done = self.completion_tokens if output_tokens is None else output_tokens
        usage: dict[str, Any] = {"input_tokens": self.prompt_tokens - self.cached_tokens}
        if self.cache_details:
            usage["cache_read_input_tokens"] = self.cached_tokens
            usage["cache_creation_input_tokens"] = 0
        usage["output_tokens"] = done
        return usage


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


# --- the Responses API (/v1/responses) ---------------------------------------------------------


def _item_ids(job: Job) -> tuple[str, str]:
    """The ids of the reasoning and the message output items of ``job``."""
    tail = job.response_id.split("_", 1)[-1]
    return "rs_" + tail, "msg_" + tail


def reasoning_item(job: Job, text: str | None) -> dict[str, Any]:
    """The reasoning output item; ``text`` None while it is still being generated."""
    item: dict[str, Any] = {"id": _item_ids(job)[0], "type": "reasoning", "summary": []}
    if text is None:
        item["status"] = "in_progress"
        item["content"] = []
    else:
        item["status"] = "completed"
        item["content"] = [{"type": "reasoning_text", "text": text}]
    return item


def message_item(job: Job, text: str | None) -> dict[str, Any]:
    """The assistant message output item; ``text`` None while it is in progress."""
    done = text is not None
    content = [output_text_part(text)] if done else []
    return {
        "id": _item_ids(job)[1],
        "type": "message",
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": content,
    }


def output_text_part(text: str | None) -> dict[str, Any]:
    return {"type": "output_text", "text": text or "", "annotations": [], "logprobs": []}


def response_object(
    job: Job, status: str, output: list[dict[str, Any]], usage: bool = True
) -> dict[str, Any]:
    """A Responses API response object (``status``: in_progress, completed, failed)."""
    incomplete = status == "completed" and job.finish_reason == "length"
    return {
        "id": job.response_id,
        "object": "response",
        "created_at": job.created,
        "status": "incomplete" if incomplete else status,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "error": None,
        "model": job.model,
        "output": output,
        "usage": job.responses_usage() if usage else None,
    }


def responses_body(job: Job, reasoning: str, content: str) -> bytes:
    """A whole non-streaming Responses API answer."""
    output = [reasoning_item(job, reasoning)] if job.reasoning_tokens else []
    output.append(message_item(job, content))
    return orjson.dumps(response_object(job, "completed", output))


def responses_event(kind: str, seq: int, **fields: Any) -> bytes:
    """One Responses stream event's data: its type, sequence number and fields."""
    return orjson.dumps({"type": kind, "sequence_number": seq, **fields})
