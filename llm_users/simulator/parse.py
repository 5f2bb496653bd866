"""Reading a completion request: prompt token count, max_tokens and the output decided."""

from __future__ import annotations

import secrets
import time
from functools import lru_cache
from typing import Any

from .config import SimConfig
from .payloads import Job
from .tokenizer import count_tokens

DEFAULT_OUTPUT_TOKENS = 64


class BadRequest(ValueError):
    """The request is well-formed JSON but not a valid completion request."""


# Benchmarks repeat the same long prompts: remember the last counts.
_count = lru_cache(maxsize=256)(count_tokens)


def prompt_tokens(req: dict[str, Any], chat: bool) -> int:
    """Prompt tokens: message contents joined by newlines, or the completion prompt."""
    if chat:
        messages = req.get("messages", [])
        if not isinstance(messages, list):
            raise BadRequest("'messages' must be a list")
        return _count("\n".join(_message_text(m) for m in messages))
    prompt = req.get("prompt", "")
    if isinstance(prompt, str):
        return _count(prompt)
    if isinstance(prompt, list):
        if all(isinstance(x, str) for x in prompt):
            return _count("\n".join(prompt))
        if all(isinstance(x, int) for x in prompt):
            return len(prompt)  # already token ids
        if all(isinstance(x, list) for x in prompt):
            return sum(len(x) for x in prompt)
    raise BadRequest("'prompt' must be a string, a list of strings or token ids")


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def max_tokens(req: dict[str, Any]) -> int | None:
    """``max_tokens``, else ``max_completion_tokens``, else None."""
    value = req.get("max_tokens")
    if value is None:
        value = req.get("max_completion_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest("'max_tokens' must be a non-negative integer")
    return value


def output_length(cfg: SimConfig, limit: int | None) -> tuple[int, str]:
    """Tokens to generate and the finish reason ("length" when max_tokens is reached)."""
    if cfg.output_tokens > 0:
        total = cfg.output_tokens if limit is None else min(cfg.output_tokens, limit)
    else:
        total = DEFAULT_OUTPUT_TOKENS if limit is None else limit
    return total, "length" if limit is not None and total >= limit else "stop"


def make_job(cfg: SimConfig, req: dict[str, Any], chat: bool, rid: int) -> Job:
    """Decide the whole answer to a validated request."""
    total, finish = output_length(cfg, max_tokens(req))
    # Reasoning comes out of the same budget, as on real servers; chat only.
    reasoning = min(cfg.reasoning_tokens, total) if chat else 0
    options = req.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return Job(
        rid=rid,
        chat=chat,
        response_id=("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12),
        created=int(time.time()),
        model=cfg.model_name,
        prompt_tokens=prompt_tokens(req, chat),
        reasoning_tokens=reasoning,
        content_tokens=total - reasoning,
        finish_reason=finish,
        include_usage=include_usage,
        reasoning_field=cfg.reasoning_field,
    )
