"""Reading a completion, chat, Responses or Messages request: its prompt, limit and the answer
decided."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .config import SimConfig
from .payloads import Job
from .tokenizer import count_tokens, token_ids

DEFAULT_OUTPUT_TOKENS = 64
API_PREFIX = {"chat": "chatcmpl-", "completion": "cmpl-", "responses": "resp_", "messages": "msg_"}


class BadRequest(ValueError):
    """The request is well-formed JSON but not a valid completion request."""


# Benchmarks repeat the same long prompts: remember the last counts (and ids, for the cache).
_count = lru_cache(maxsize=256)(count_tokens)
_ids = lru_cache(maxsize=64)(token_ids)


@dataclass(frozen=True)
class Prompt:
    """A request's prompt: its token count, token ids (when asked for) and message roles."""

    tokens: int
    ids: tuple[int, ...] | None = None
    roles: tuple[str, ...] | None = None


def read_prompt(req: dict[str, Any], api: str, want_ids: bool = False) -> Prompt:
    """The prompt of a ``chat``, ``completion`` or ``responses`` request.

    Chat and Responses prompts are the message texts joined by newlines (Responses
    ``instructions`` first, as a system message); completion prompts may be token ids.
    """
    if api == "completion":
        return _completion_prompt(req.get("prompt", ""), want_ids)
    if api == "chat":
        messages = _messages(req)
    elif api == "messages":
        messages = _anthropic_messages(req)
    else:
        messages = _responses_messages(req)
    text = "\n".join(_message_text(m) for m in messages)
    roles = tuple(str(m.get("role")) if isinstance(m, dict) else "" for m in messages)
    if want_ids:
        ids = _ids(text)
        return Prompt(len(ids), ids, roles)
    return Prompt(_count(text), None, roles)


def _messages(req: dict[str, Any]) -> list[Any]:
    messages = req.get("messages", [])
    if not isinstance(messages, list):
        raise BadRequest("'messages' must be a list")
    return messages


def _responses_messages(req: dict[str, Any]) -> list[Any]:
    raw = req.get("input", "")
    instructions = req.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise BadRequest("'instructions' must be a string")
    if isinstance(raw, str):
        messages: list[Any] = [{"role": "user", "content": raw}]
    elif isinstance(raw, list):
        messages = list(raw)
    else:
        raise BadRequest("'input' must be a string or a list of messages")
    if instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    return messages


def _anthropic_messages(req: dict[str, Any]) -> list[Any]:
    """Anthropic's ``messages``, with the top-level ``system`` (text or text blocks) first;
    ``max_tokens`` is required, as the real API requires it."""
    value = req.get("max_tokens")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest("max_tokens: Field required (a positive integer)")
    messages = list(_messages(req))
    system = req.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise BadRequest("'system' must be a string or a list of text blocks")
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _completion_prompt(prompt: Any, want_ids: bool) -> Prompt:
    if isinstance(prompt, list) and all(isinstance(x, list) for x in prompt) and prompt:
        prompt = [t for x in prompt for t in x]  # a batch: its token ids, one after another
    if isinstance(prompt, list) and prompt and all(isinstance(x, str) for x in prompt):
        prompt = "\n".join(prompt)
    if isinstance(prompt, str):
        if want_ids:
            ids = _ids(prompt)
            return Prompt(len(ids), ids)
        return Prompt(_count(prompt))
    if isinstance(prompt, list) and all(
        isinstance(x, int) and not isinstance(x, bool) for x in prompt
    ):
        return Prompt(len(prompt), tuple(prompt) if want_ids else None)  # already token ids
    raise BadRequest("'prompt' must be a string, a list of strings or token ids")


def prompt_tokens(req: dict[str, Any], chat: bool) -> int:
    """Prompt tokens: message contents joined by newlines, or the completion prompt."""
    return read_prompt(req, "chat" if chat else "completion").tokens


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
    """``max_tokens``, else ``max_completion_tokens``, else ``max_output_tokens``, else None."""
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = req.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadRequest(f"'{key}' must be a non-negative integer")
        return value
    return None


def output_length(cfg: SimConfig, limit: int | None) -> tuple[int, str]:
    """Tokens to generate and the finish reason ("length" when max_tokens is reached)."""
    if cfg.output_tokens > 0:
        total = cfg.output_tokens if limit is None else min(cfg.output_tokens, limit)
    else:
        total = DEFAULT_OUTPUT_TOKENS if limit is None else limit
    return total, "length" if limit is not None and total >= limit else "stop"


def make_job(
    cfg: SimConfig,
    req: dict[str, Any],
    api: str,
    rid: int,
    prompt: Prompt | None = None,
    cached_tokens: int = 0,
) -> Job:
    """Decide the whole answer to a validated request (``api``: chat, completion, responses,
    messages)."""
    if prompt is None:
        prompt = read_prompt(req, api)
    total, finish = output_length(cfg, max_tokens(req))
    # Reasoning comes out of the same budget, as on real servers; not for text completions.
    reasoning = min(cfg.reasoning_tokens, total) if api != "completion" else 0
    options = req.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return Job(
        rid=rid,
        chat=api == "chat",
        response_id=API_PREFIX[api] + secrets.token_hex(12),
        created=int(time.time()),
        model=cfg.model_name,
        prompt_tokens=prompt.tokens,
        reasoning_tokens=reasoning,
        content_tokens=total - reasoning,
        finish_reason=finish,
        include_usage=include_usage,
        reasoning_field=cfg.reasoning_field,
        cached_tokens=cached_tokens,
        cache_details=cfg.prefix_cache,
        responses=api == "responses",
        messages=api == "messages",
    )
