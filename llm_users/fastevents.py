"""The common streamed event of a ``choices`` endpoint (chat, completions), decoded typed.

A typed msgspec decoder builds only the few fields a chunk needs (no dict for the rest of
the object): the fast path in front of the general handler of :mod:`llm_users.protocol`,
which takes every event the fast path cannot read exactly as it would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["choices_events"]


class _Delta(msgspec.Struct, gc=False):
    content: str | None = None
    reasoning_content: Any = None
    reasoning: Any = None


class _Choice(msgspec.Struct, gc=False):
    delta: _Delta | None = None
    text: str | None = None  # /v1/completions
    finish_reason: str | None = None


class _Event(msgspec.Struct, gc=False):
    choices: list[_Choice] | None = None
    usage: Any = None
    metrics: Any = None  # vLLM's per-request timing (server_timing.py): the general handler


_decode_event = msgspec.json.Decoder(_Event).decode
_new = tuple.__new__  # a NamedTuple from all its fields, without its Python-level __new__

Handler = Callable[[bytes, bytes], Any]


def choices_events(general: Handler, chunk: type, *, chat: bool) -> Handler:
    """``general`` (protocol's handler of one endpoint, whose events make ``chunk``
    NamedTuples: text, content, finish_reason, usage, done, error, server_timing) behind a
    fast path.

    The fast path takes an ASCII JSON object with non-empty ``choices`` of the expected
    types and no ``event:`` type. Such an object is never an error object, and it gives
    the chunk protocol's ``_chat_chunk`` / ``_completion_chunk`` give. Anything else (an
    event type, ``[DONE]``, invalid JSON, another type, a usage-only or error object,
    non-ASCII bytes, which a typed decoder would not validate where it skips) goes to
    ``general``, whole.
    """

    def on_event(
        raw: bytes,
        event: bytes,
        decode: Any = _decode_event,
        errors: Any = msgspec.DecodeError,
        new: Any = _new,
        chunk: Any = chunk,
        general: Handler = general,
    ) -> Any:
        # (the defaults are locals: this runs once per streamed event)
        if event or raw[:1] != b"{" or not raw.isascii():
            return general(raw, event)
        try:
            obj = decode(raw)
        except errors:
            return general(raw, event)
        choices = obj.choices
        if not choices or obj.metrics is not None:  # usage-only, an error object, timing...
            return general(raw, event)
        choice = choices[0]
        if not chat:
            text = choice.text or None
            return new(
                chunk, (text, text is not None, choice.finish_reason, obj.usage, False, None, None)
            )
        delta = choice.delta
        if delta is None:
            return new(chunk, (None, False, choice.finish_reason, obj.usage, False, None, None))
        content = delta.content
        # Reasoning models put their thinking in reasoning_content or reasoning: it is
        # generated output, so it is a token (as protocol's _chat_chunk says).
        reasoning = delta.reasoning_content or delta.reasoning
        if reasoning:
            if not isinstance(reasoning, str):
                return general(raw, event)
            text = reasoning + content if content else reasoning
        else:
            text = content or None
        return new(chunk, (text, bool(content), choice.finish_reason, obj.usage, False, None, None))

    return on_event
