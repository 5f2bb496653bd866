"""OpenAI API shapes: request bodies, and what a response event carries.

The client's read loop is the same for every endpoint; an :class:`Endpoint` says where the
request goes and how generated text is taken out of a streamed chunk or a full response.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["CHAT", "COMPLETIONS", "ENDPOINTS", "Chunk", "Endpoint", "error_message", "error_text"]


class Chunk(NamedTuple):
    """What one streamed event carries. ``text`` is None when it carries no generated text."""

    text: str | None  # generated text of this event: reasoning and content together
    content: bool  # True when some of that text is answer content (not reasoning)
    finish_reason: str | None
    usage: dict[str, Any] | None


_NOTHING = Chunk(None, False, None, None)


def _chat_chunk(obj: dict[str, Any]) -> Chunk:
    choices = obj.get("choices")
    usage = obj.get("usage")
    if not choices:  # usage-only chunk (include_usage) or an empty keep-alive object
        return Chunk(None, False, None, usage) if usage else _NOTHING
    choice = choices[0]
    delta = choice.get("delta") or {}
    content = delta.get("content")
    # Reasoning models put their thinking in reasoning_content (vLLM, SGLang, DeepSeek)
    # or reasoning (OpenRouter, newer vLLM): it is generated output, so it is a token.
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if reasoning and isinstance(reasoning, str):
        text = reasoning + content if content else reasoning
    else:
        text = content or None
    return Chunk(text, bool(content), choice.get("finish_reason"), usage)


def _completion_chunk(obj: dict[str, Any]) -> Chunk:
    choices = obj.get("choices")
    usage = obj.get("usage")
    if not choices:
        return Chunk(None, False, None, usage) if usage else _NOTHING
    choice = choices[0]
    text = choice.get("text") or None
    return Chunk(text, text is not None, choice.get("finish_reason"), usage)


def _chat_text(obj: dict[str, Any]) -> str:
    message = (obj.get("choices") or [{}])[0].get("message") or {}
    parts = [message.get("reasoning_content") or message.get("reasoning"), message.get("content")]
    return "".join(p for p in parts if isinstance(p, str))


def _completion_text(obj: dict[str, Any]) -> str:
    text = (obj.get("choices") or [{}])[0].get("text")
    return text if isinstance(text, str) else ""


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI endpoint: its path, how a request body is built, how text is extracted."""

    name: str
    path: str
    chunk: Any  # (dict) -> Chunk, for a streamed event
    full_text: Any  # (dict) -> str, for a non-streamed response

    def body(
        self,
        prompt: str | list[dict[str, Any]],
        *,
        model: str,
        max_tokens: int | None,
        stream: bool,
        stream_usage: bool,
        system_prompt: str | None,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        """The JSON request body; ``extra`` is merged last, so the user has the last word."""
        body: dict[str, Any] = {"model": model}
        if self.name == "chat":
            if isinstance(prompt, list):
                messages = list(prompt)
            else:
                messages = [{"role": "user", "content": prompt}]
            if system_prompt and not any(m.get("role") == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": system_prompt})
            body["messages"] = messages
        else:
            body["prompt"] = prompt if isinstance(prompt, str) else _flatten(prompt)
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        body["stream"] = stream
        if stream and stream_usage:
            body["stream_options"] = {"include_usage": True}
        body.update(extra)
        return body


def _flatten(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages)


CHAT = Endpoint("chat", "/v1/chat/completions", _chat_chunk, _chat_text)
COMPLETIONS = Endpoint("completions", "/v1/completions", _completion_chunk, _completion_text)
ENDPOINTS = {"chat": CHAT, "completions": COMPLETIONS}


def error_message(obj: Any) -> str | None:
    """The message of an OpenAI-style ``{"error": ...}`` object, or None if it is not one."""
    if not isinstance(obj, dict) or obj.get("choices"):
        return None
    if obj.get("object") == "error":  # older vLLM: {"object": "error", "message": ...}
        msg = obj.get("message") or obj.get("type") or "error"
        code = obj.get("code")
        return f"{msg} (code {code})" if code not in (None, "") else str(msg)
    if "error" not in obj:
        return None
    err = obj["error"]
    if err is None:  # "error": null beside a usage chunk is not an error
        return None
    if isinstance(err, dict):
        msg = err.get("message") or err.get("type") or str(err)
        code = err.get("code")
        return f"{msg} (code {code})" if code not in (None, "") else str(msg)
    return str(err)


def error_text(body: bytes, limit: int = 200) -> str:
    """A readable one-line message from an HTTP error body: JSON error, FastAPI detail, HTML."""
    if not body.strip():
        return "(no body)"
    try:
        obj = json.loads(body)
        msg = error_message(obj)
        if msg:
            return msg[:limit]
        if isinstance(obj, dict) and "detail" in obj:  # FastAPI-style servers
            return str(obj["detail"])[:limit]
    except ValueError:
        pass
    text = body.decode("utf-8", "replace")
    if "<" in text:  # an HTML error page: keep its words, not its markup
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
        text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
