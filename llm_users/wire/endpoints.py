"""OpenAI and Anthropic API shapes: request bodies, headers, and what a response event carries.

The client's read loop is the same for every endpoint; an :class:`Endpoint` says where the
request goes, builds its body, turns each streamed SSE event into a :class:`Chunk` and a
whole (non-streamed) response into a :class:`Full`. The loop never branches on the endpoint.
Every endpoint's shapes side by side: the module reads better whole than split per endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from .fastevents import Batch, choices_batch, choices_events
from .server_timing import server_timing

__all__ = [
    "CHAT",
    "COMPLETIONS",
    "EMBEDDINGS",
    "ENDPOINTS",
    "MESSAGES",
    "POOLING",
    "RERANK",
    "RESPONSES",
    "BadShape",
    "Chunk",
    "Endpoint",
    "Full",
    "error_message",
    "error_text",
]


class Chunk(NamedTuple):
    """What one streamed event carries. ``text`` is None when it carries no generated text."""

    text: str | None  # generated text of this event: reasoning and content together
    content: bool  # True when some of that text is answer content (not reasoning)
    finish_reason: str | None
    usage: dict[str, Any] | None
    done: bool = False  # the end of the stream ([DONE], response.completed, ...)
    error: str | None = None  # an error reported inside the stream
    server_timing: dict[str, float] | None = None  # vLLM's per-request ``metrics``, if sent


class Full(NamedTuple):
    """What a whole (non-streamed) response carries."""

    text: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    server_timing: dict[str, float] | None = None  # vLLM's per-request ``metrics``, if sent
    items: int | None = None  # embeddings: vectors returned; rerank: documents scored


class BadShape(ValueError):
    """An event or a response that is not what its endpoint sends; the message says how."""


_NOTHING = Chunk(None, False, None, None)
_DONE = Chunk(None, False, None, None, True)


def _chat_chunk(obj: dict[str, Any]) -> Chunk:
    choices = obj.get("choices")
    usage = obj.get("usage")
    timing = server_timing(obj)
    if not choices:  # usage-only chunk (include_usage) or an empty keep-alive object
        return (
            Chunk(None, False, None, usage, server_timing=timing) if usage or timing else _NOTHING
        )
    choice = choices[0]
    delta = choice.get("delta") or {}
    content = delta.get("content")
    if content is not None and not isinstance(content, str):
        raise TypeError(f"content is a {type(content).__name__}, not text")
    # Reasoning models put their thinking in reasoning_content (vLLM, SGLang, DeepSeek)
    # or reasoning (OpenRouter, newer vLLM): it is generated output, so it is a token.
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    text: str | None
    if reasoning and isinstance(reasoning, str):
        text = reasoning + content if content else reasoning
    else:
        text = content or None
    return Chunk(text, bool(content), choice.get("finish_reason"), usage, server_timing=timing)


def _completion_chunk(obj: dict[str, Any]) -> Chunk:
    choices = obj.get("choices")
    usage = obj.get("usage")
    timing = server_timing(obj)
    if not choices:
        return (
            Chunk(None, False, None, usage, server_timing=timing) if usage or timing else _NOTHING
        )
    choice = choices[0]
    text = choice.get("text") or None
    if text is not None and not isinstance(text, str):
        raise TypeError(f"text is a {type(text).__name__}, not text")
    finish = choice.get("finish_reason")
    return Chunk(text, text is not None, finish, usage, server_timing=timing)


def _chat_text(obj: dict[str, Any]) -> str:
    message = (obj.get("choices") or [{}])[0].get("message") or {}
    parts = [message.get("reasoning_content") or message.get("reasoning"), message.get("content")]
    return "".join(p for p in parts if isinstance(p, str))


def _completion_text(obj: dict[str, Any]) -> str:
    text = (obj.get("choices") or [{}])[0].get("text")
    return text if isinstance(text, str) else ""


def clip(raw: bytes, n: int = 200) -> str:
    """Raw bytes as a short readable string, for failure messages."""
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= n else text[:n] + "..."


_SHAPE_ERRORS = (AttributeError, TypeError, IndexError, KeyError)


def json_events(
    chunk_of: Callable[[dict[str, Any]], Chunk], error_objects: bool = True
) -> Callable[[bytes, bytes], Chunk]:
    """A stream-event handler for JSON ``data:`` events: ``[DONE]`` ends the stream; with
    ``error_objects``, an OpenAI error object (or an ``event: error``) is an error; the rest
    goes to ``chunk_of``.
    """

    def on_event(
        raw: bytes,
        event: bytes,
        loads: Any = orjson.loads,
        decode_error: Any = orjson.JSONDecodeError,
        error_of: Any = error_message if error_objects else None,
        nothing: Chunk = _NOTHING,
        done: Chunk = _DONE,
    ) -> Chunk:
        # (the defaults are locals: this runs once per streamed event)
        if raw == b"[DONE]":
            return done
        if not raw:
            return nothing
        try:
            obj = loads(raw)
        except decode_error:
            raise BadShape(f"data line is not JSON: {clip(raw)}") from None
        if not isinstance(obj, dict):
            raise BadShape(f"data is not a JSON object: {clip(raw)}")
        # An object with (non-empty) choices is never an error object (error_message):
        # only an ``event: error`` makes it one, so the common event skips the check.
        if error_of is not None and (event or not obj.get("choices")):
            err = error_of(obj)
            if err is not None or event == b"error":
                return Chunk(None, False, None, None, False, err or clip(raw))
        try:
            return chunk_of(obj)
        except _SHAPE_ERRORS as exc:
            raise BadShape(f"unexpected chunk shape ({exc}): {clip(raw)}") from None

    return on_event


def choices_full(text_of: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], Full]:
    """A full-response handler for the ``choices`` shapes (chat and completions)."""

    def on_full(obj: dict[str, Any]) -> Full:
        if not isinstance(obj.get("choices"), list):
            raise BadShape("no choices in the response")
        try:
            text = text_of(obj)
        except _SHAPE_ERRORS as exc:
            raise BadShape(f"unexpected response shape ({exc})") from None
        usage = obj.get("usage")
        choice = obj["choices"][0] if obj["choices"] else {}
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        return Full(text, finish, usage if isinstance(usage, dict) else None, server_timing(obj))

    return on_full


Body = dict[str, Any]


def _chat_body(
    prompt: Any, max_tokens: int | None, stream: bool, stream_usage: bool, system: str | None
) -> Body:
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    if system and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return _choices_tail({"messages": messages}, max_tokens, stream, stream_usage)


def _completion_body(
    prompt: Any, max_tokens: int | None, stream: bool, stream_usage: bool, system: str | None
) -> Body:
    text = prompt if isinstance(prompt, str) else _flatten(prompt)
    return _choices_tail({"prompt": text}, max_tokens, stream, stream_usage)


def _choices_tail(body: Body, max_tokens: int | None, stream: bool, stream_usage: bool) -> Body:
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body["stream"] = stream
    if stream and stream_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    """OpenAI's key header: ``Authorization: Bearer <key>`` (nothing without a key)."""
    return (("Authorization", f"Bearer {key}"),) if key else ()


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI endpoint: its path and its three handlers.

    ``build`` makes the body (without the model and the user's extra fields);
    ``on_event(data, event_type) -> Chunk`` reads one SSE event (raises :class:`BadShape`);
    ``on_full(obj) -> Full`` reads a whole JSON response (raises :class:`BadShape`).
    ``chunk`` and ``full_text`` are the per-JSON-object pieces the handlers are made of.
    """

    name: str
    path: str
    chunk: Callable[[dict[str, Any]], Chunk]  # a streamed event's JSON object -> Chunk
    full_text: Callable[[dict[str, Any]], str]  # a whole response's JSON object -> its text
    build: Callable[[Any, int | None, bool, bool, str | None], Body]
    on_event: Callable[[bytes, bytes], Chunk]
    on_full: Callable[[dict[str, Any]], Full]
    max_tokens_key: str = "max_tokens"  # where ``build`` puts the output budget
    min_output_tokens: int = 1  # the smallest budget the API accepts (a pre-test ping)
    # A run of plain data events in one call (fastevents.choices_batch); None: per event.
    on_batch: Callable[[list[bytes]], Batch] | None = None
    # The API key (may be "") -> the headers that carry it and the API's own fixed ones.
    auth: Callable[[str], tuple[tuple[str, str], ...]] = bearer

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
        body.update(self.build(prompt, max_tokens, stream, stream_usage, system_prompt))
        body.update(extra)
        return body


def _flatten(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages)


# -- the Responses API (POST /v1/responses) ----------------------------------------------

# Event types that carry generated text, and whether that text is answer content.
_RESPONSES_TEXT = {
    "response.output_text.delta": True,
    "response.reasoning_text.delta": False,
    "response.reasoning_summary_text.delta": False,
}


def _responses_chunk(obj: dict[str, Any]) -> Chunk:
    kind = obj.get("type")
    is_content = _RESPONSES_TEXT.get(kind)  # type: ignore[arg-type]
    if is_content is not None:
        delta = obj.get("delta")
        return (
            Chunk(delta, is_content, None, None) if isinstance(delta, str) and delta else _NOTHING
        )
    if kind == "response.completed":  # the end of the stream, like [DONE]
        usage = _responses_usage((obj.get("response") or {}).get("usage"))
        return Chunk(None, False, "stop", usage, True)
    if kind == "response.incomplete":  # the end too: out of budget (or filtered)
        resp = obj.get("response") or {}
        reason = (resp.get("incomplete_details") or {}).get("reason")
        finish = "length" if reason in (None, "max_output_tokens") else str(reason)
        return Chunk(None, False, finish, _responses_usage(resp.get("usage")), True)
    if kind == "response.failed":
        err = (obj.get("response") or {}).get("error")
        msg = error_message({"error": err}) if err else None
        return Chunk(None, False, None, None, False, msg or "response failed")
    if kind == "error":  # {"type": "error", "code", "message", "param"}
        return Chunk(None, False, None, None, False, error_message({"error": obj}) or "error")
    err = error_message(obj)  # a chat-style {"error": ...} object from a proxy
    if err is not None:
        return Chunk(None, False, None, None, False, err)
    return _NOTHING  # response.created, output_item.added, *.done, ...


def _responses_usage(usage: Any) -> dict[str, Any] | None:
    """Responses usage under the chat usage keys (prompt/completion/total tokens)."""
    if not isinstance(usage, dict):
        return None
    out: dict[str, Any] = {
        "prompt_tokens": usage.get("input_tokens"),
        "completion_tokens": usage.get("output_tokens"),
        "total_tokens": usage.get("total_tokens"),
    }
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def _responses_text(obj: dict[str, Any]) -> str:
    """The generated text of a whole response: its output_text (and reasoning_text) parts."""
    parts = []
    for item in obj.get("output") or []:
        for part in item.get("content") or []:
            if part.get("type") in ("output_text", "reasoning_text"):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
    return "".join(parts)


def _responses_full(obj: dict[str, Any]) -> Full:
    if not isinstance(obj.get("output"), list):
        raise BadShape("no output in the response")
    try:
        text = _responses_text(obj)
    except _SHAPE_ERRORS as exc:
        raise BadShape(f"unexpected response shape ({exc})") from None
    status = obj.get("status")
    finish: str | None = "stop" if status == "completed" else None
    if status == "incomplete":
        reason = (obj.get("incomplete_details") or {}).get("reason")
        finish = "length" if reason in (None, "max_output_tokens") else str(reason)
    return Full(text, finish, _responses_usage(obj.get("usage")))


def _responses_body(
    prompt: Any, max_tokens: int | None, stream: bool, stream_usage: bool, system: str | None
) -> Body:
    """``input`` (text or messages), ``instructions``, ``max_output_tokens``, ``stream``;
    usage always comes in ``response.completed``, so ``stream_usage`` adds nothing."""
    body: Body = {"input": list(prompt) if isinstance(prompt, list) else prompt}
    has_system = isinstance(prompt, list) and any(m.get("role") == "system" for m in prompt)
    if system and not has_system:
        body["instructions"] = system
    if max_tokens is not None:
        body["max_output_tokens"] = max_tokens
    body["stream"] = stream
    return body


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


# An error body is read this far for its message (the client reads 64 KiB at most anyway):
# a message is in its first few KiB, and the work below is linear in what is kept.
ERROR_TEXT_BYTES = 16 * 1024
_MARKUP = re.compile(r"<[^<>]*>")  # one tag: linear (no nesting, no backtracking past "<")
_RAW_TEXT = re.compile(rb"<(script|style)\b", re.I)  # where a script or style block opens


def error_text(body: bytes, limit: int = 200) -> str:
    """A readable one-line message from an HTTP error body: JSON error, FastAPI detail, HTML.

    Never raises, and bounded: only the first ERROR_TEXT_BYTES are read, JSON nested past
    orjson's depth limit (1024) is not JSON, and the markup is stripped in linear time
    (a page of ``<script`` repeated once took seconds with a backtracking pattern).
    """
    body = body[:ERROR_TEXT_BYTES]
    if not body.strip():
        return "(no body)"
    try:
        obj = orjson.loads(body)
        msg = error_message(obj)
        if msg:
            return msg[:limit]
        if isinstance(obj, dict) and "detail" in obj:  # FastAPI-style servers
            return str(obj["detail"])[:limit]
    except (ValueError, RecursionError):  # not JSON (a cut body too), or nested too deep
        pass
    if b"<" in body:  # an HTML error page: keep its words, not its markup
        body = _strip_raw_text(body)
    text = body.decode("utf-8", "replace")
    if "<" in text:
        text = _MARKUP.sub(" ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _strip_raw_text(body: bytes) -> bytes:
    """``body`` without its script and style blocks: one forward scan (each opening found
    once, its closing searched from there on), so linear in the body's length."""
    out: list[bytes] = []
    pos = 0
    low = body.lower()
    while (m := _RAW_TEXT.search(body, pos)) is not None:
        out.append(body[pos : m.start()])
        close = low.find(b"</" + m.group(1).lower(), m.end())
        if close < 0:  # never closed: the rest is script
            pos = len(body)
            break
        end = low.find(b">", close)
        pos = len(body) if end < 0 else end + 1
        out.append(b" ")
    out.append(body[pos:])
    return b"".join(out)


def _endpoint(name: str, path: str, chunk: Any, text: Any, build: Any) -> Endpoint:
    # the general handler, behind a fast path for the common event (fastevents.py)
    chat = chunk is _chat_chunk
    events = choices_events(json_events(chunk), Chunk, chat=chat)
    batch = choices_batch(events, BadShape, chat=chat)
    return Endpoint(name, path, chunk, text, build, events, choices_full(text), on_batch=batch)


CHAT = _endpoint("chat", "/v1/chat/completions", _chat_chunk, _chat_text, _chat_body)
COMPLETIONS = _endpoint(
    "completions", "/v1/completions", _completion_chunk, _completion_text, _completion_body
)
RESPONSES = Endpoint(
    "responses",
    "/v1/responses",
    _responses_chunk,
    _responses_text,
    _responses_body,
    json_events(_responses_chunk, error_objects=False),
    _responses_full,
    max_tokens_key="max_output_tokens",
    min_output_tokens=16,  # OpenAI refuses a smaller max_output_tokens
)

# -- Anthropic's Messages API (POST /v1/messages) ----------------------------------------

ANTHROPIC_VERSION = "2023-06-01"  # the API version every request names (a required header)
# Anthropic's stop reasons in the chat names the figures use; others are kept as they come.
_MESSAGES_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls"}  # fmt: skip
# content_block_delta types that carry generated text, and whether it is answer content;
# thinking is reasoning: a token (the first one may be thinking), never answer content.
_MESSAGES_DELTA = {"text_delta": ("text", True), "thinking_delta": ("thinking", False)}


def _messages_auth(key: str) -> tuple[tuple[str, str], ...]:
    """``x-api-key`` instead of a bearer token, and the version header the API requires."""
    version = (("anthropic-version", ANTHROPIC_VERSION),)
    return ((("x-api-key", key),) if key else ()) + version


def _messages_usage(usage: Any) -> dict[str, Any] | None:
    """Messages usage under the chat keys. The stream splits it: message_start has the input
    tokens, message_delta the (cumulative) output tokens; the client merges the two."""
    if not isinstance(usage, dict):
        return None
    out: dict[str, Any] = {}
    prompt = usage.get("input_tokens")
    if isinstance(prompt, int):
        # Anthropic counts cached tokens apart from input_tokens; the chat prompt count has them.
        cache_read = usage.get("cache_read_input_tokens") or 0
        cache_write = usage.get("cache_creation_input_tokens") or 0
        out["prompt_tokens"] = prompt + cache_read + cache_write
        if "cache_read_input_tokens" in usage:
            out["prompt_tokens_details"] = {"cached_tokens": cache_read}
    output = usage.get("output_tokens")
    if isinstance(output, int):
        out["completion_tokens"] = output
    return out or None


def _messages_chunk(obj: dict[str, Any]) -> Chunk:
    kind = obj.get("type")
    if kind == "content_block_delta":  # the common event: a piece of text or of thinking
        delta = obj.get("delta") or {}
        field = _MESSAGES_DELTA.get(delta.get("type"))  # type: ignore[arg-type]
        if field is None:  # signature_delta, input_json_delta: no generated text
            return _NOTHING
        text = delta.get(field[0])
        return Chunk(text, field[1], None, None) if isinstance(text, str) and text else _NOTHING
    if kind == "message_start":  # the input tokens (and the first output count)
        usage = _messages_usage((obj.get("message") or {}).get("usage"))
        if usage is not None:
            usage.pop("completion_tokens", None)  # message_delta gives the real count
        return Chunk(None, False, None, usage) if usage else _NOTHING
    if kind == "message_delta":
        reason = (obj.get("delta") or {}).get("stop_reason")
        finish = _MESSAGES_STOP.get(reason, reason) if reason else None
        return Chunk(None, False, finish, _messages_usage(obj.get("usage")))
    if kind == "message_stop":  # the end of the stream, like [DONE]
        return _DONE
    if kind == "error":  # event: error, {"type": "error", "error": {"type", "message"}}
        return Chunk(None, False, None, None, False, error_message(obj) or "error")
    err = error_message(obj)  # an OpenAI-style error object from a proxy
    if err is not None:
        return Chunk(None, False, None, None, False, err)
    return _NOTHING  # ping, content_block_start, content_block_stop


def _messages_text(obj: dict[str, Any]) -> str:
    """The generated text of a whole message: its text and thinking blocks, in order."""
    parts = []
    for block in obj.get("content") or []:
        field = {"text": "text", "thinking": "thinking"}.get(block.get("type"))
        text = block.get(field) if field else None
        if isinstance(text, str):
            parts.append(text)
    return "".join(parts)


def _messages_full(obj: dict[str, Any]) -> Full:
    if not isinstance(obj.get("content"), list):
        raise BadShape("no content in the message")
    try:
        text = _messages_text(obj)
    except _SHAPE_ERRORS as exc:
        raise BadShape(f"unexpected message shape ({exc})") from None
    reason = obj.get("stop_reason")
    finish = _MESSAGES_STOP.get(reason, reason) if isinstance(reason, str) else None
    return Full(text, finish, _messages_usage(obj.get("usage")))


def _messages_body(
    prompt: Any, max_tokens: int | None, stream: bool, stream_usage: bool, system: str | None
) -> Body:
    """``messages`` (system messages move to the top-level ``system``), ``max_tokens`` (the
    API requires it), ``stream``; usage always comes in the stream, so no ``stream_usage``."""
    given = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    systems = [str(m.get("content") or "") for m in given if m.get("role") == "system"]
    body: Body = {"messages": [m for m in given if m.get("role") != "system"]}
    top = "\n".join(s for s in systems if s) if systems else system
    if top:
        body["system"] = top
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body["stream"] = stream
    return body


MESSAGES = Endpoint(
    "messages",
    "/v1/messages",
    _messages_chunk,
    _messages_text,
    _messages_body,
    json_events(_messages_chunk, error_objects=False),
    _messages_full,
    auth=_messages_auth,
)

# -- pooling: embeddings (POST /v1/embeddings) and rerank (POST /v1/rerank) ---------------
# Whole JSON answers, never streamed: no tokens are generated, so no TTFT. The body's texts
# are the prompt source's, several per request (the user gathers them: a list here).


def _texts_of(prompt: Any) -> list[str]:
    items = prompt if isinstance(prompt, list) and not _is_messages(prompt) else [prompt]
    return [p if isinstance(p, str) else _flatten(p) for p in items]


def _is_messages(prompt: list[Any]) -> bool:
    return bool(prompt) and isinstance(prompt[0], dict)


def _embeddings_body(
    prompt: Any, max_tokens: int | None, stream: bool, stream_usage: bool, system: str | None
) -> Body:
    """``input``: the batch of texts (OpenAI's shape; vLLM, TEI and llama.cpp take it)."""
    return {"input": _texts_of(prompt)}


def _rerank_body(
    prompt: Any, max_tokens: int | None, stream: bool, stream_usage: bool, system: str | None
) -> Body:
    """``query`` (the first text) and ``documents`` (the others): Jina's and Cohere's shape,
    as vLLM serves it at /v1/rerank."""
    texts = _texts_of(prompt)
    return {"query": texts[0], "documents": texts[1:] or texts[:1]}


def _pooled_usage(usage: Any) -> dict[str, Any] | None:
    """Usage under the chat keys: every token of a pooling request is a prompt token (rerank
    servers report only ``total_tokens``)."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("total_tokens"))
    return {"prompt_tokens": prompt, "total_tokens": usage.get("total_tokens", prompt)}


def _embeddings_full(obj: dict[str, Any]) -> Full:
    data = obj.get("data")
    if not isinstance(data, list) or not all(
        isinstance(d, dict) and isinstance(d.get("embedding"), (list, str)) for d in data
    ):
        raise BadShape("no embeddings (data[].embedding) in the response")
    return Full("", None, _pooled_usage(obj.get("usage")), items=len(data))


def _rerank_full(obj: dict[str, Any]) -> Full:
    results = obj.get("results")
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and isinstance(r.get("relevance_score"), (int, float)) for r in results
    ):
        raise BadShape("no scored results (results[].relevance_score) in the response")
    return Full("", None, _pooled_usage(obj.get("usage")), items=len(results))


def _no_stream(raw: bytes, event: bytes) -> Chunk:
    raise BadShape("this endpoint does not stream")


def _no_chunk(obj: dict[str, Any]) -> Chunk:
    raise BadShape("this endpoint does not stream")


EMBEDDINGS = Endpoint(
    "embeddings", "/v1/embeddings", _no_chunk, lambda obj: "", _embeddings_body, _no_stream,
    _embeddings_full,
)  # fmt: skip
RERANK = Endpoint(
    "rerank", "/v1/rerank", _no_chunk, lambda obj: "", _rerank_body, _no_stream, _rerank_full
)
POOLING = ("embeddings", "rerank")  # the endpoints that generate nothing: never streamed
ENDPOINTS = {"chat": CHAT, "completions": COMPLETIONS, "responses": RESPONSES, "messages": MESSAGES,
             "embeddings": EMBEDDINGS, "rerank": RERANK}  # fmt: skip
