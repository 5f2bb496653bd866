"""The common streamed event of a ``choices`` endpoint (chat, completions), decoded typed.

A typed msgspec decoder builds only the few fields a chunk needs (no dict for the rest of
the object): the fast path in front of the general handler of :mod:`llm_users.wire.endpoints`,
which takes every event the fast path cannot read exactly as it would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

__all__ = ["Batch", "choices_batch", "choices_events", "merge_usage"]


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


def merge_usage(old: Any, new: Any) -> Any:
    """A usage object updates the one before it key by key (Anthropic's Messages stream
    splits usage: input tokens first, output tokens at the end); one that is not a JSON
    object is no usage and changes nothing. Associative, so a read's run of events merged
    at once gives what merging them one by one gives."""
    if not isinstance(new, dict):
        return old
    return {**old, **new} if old else new


_decode_event = msgspec.json.Decoder(_Event).decode
_new = tuple.__new__  # a NamedTuple from all its fields, without its Python-level __new__

Handler = Callable[[bytes, bytes], Any]


class Batch(NamedTuple):
    """What :func:`choices_batch` made of the leading events of a read."""

    taken: int  # how many events, from the first: the rest go to the event handler
    texts: list[str]  # the tokens among them, in order
    content: bool  # one of them was answer content (not reasoning): the first answer token
    finish_reason: str | None  # the last one given
    usage: Any  # the ones given, merged (merge_usage)


BatchHandler = Callable[[list[bytes]], Batch]


def choices_events(general: Handler, chunk: type, *, chat: bool) -> Handler:
    """``general`` (protocol's handler of one endpoint, whose events make ``chunk``
    NamedTuples: text, content, finish_reason, usage, done, error, server_timing) behind a
    fast path.

    The fast path takes a JSON object with non-empty ``choices`` of the expected types and
    no ``event:`` type, in valid UTF-8 (checked first when not ASCII: a typed decoder does
    not validate the fields it skips, the general handler does). Such an object is never
    an error object, and it gives the chunk protocol's ``_chat_chunk`` /
    ``_completion_chunk`` give. Anything else (an event type, ``[DONE]``, invalid JSON or
    UTF-8, another type, a usage-only or error object) goes to ``general``, whole.
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
        if event or raw[:1] != b"{":
            return general(raw, event)
        if not raw.isascii():
            try:
                raw.decode()  # valid UTF-8 throughout, as the general handler requires
            except UnicodeDecodeError:
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


def choices_batch(one: Handler, stop: type[Exception], *, chat: bool) -> BatchHandler:
    """A read's run of plain ``data:`` events (no ``event:`` type) in one call, not one
    per event: the hot path when a read holds many events (a burst, a client behind).

    ``one`` is the per-event handler (:func:`choices_events`' result), which raises
    ``stop`` on a malformed event. Events are taken from the first while each is a token
    or nothing: the common chunk read inline as ``choices_events`` reads it, any other
    through ``one``. The first that ends the stream or says more (``[DONE]``, an error,
    server timing, a malformed event) is not taken: it and the rest go to the per-event
    loop, in order, so that the record is what that loop alone would make.
    """

    def on_events(
        payloads: list[bytes],
        decode: Any = _decode_event,
        errors: Any = msgspec.DecodeError,
        one: Handler = one,
        stop: Any = stop,
        new: Any = _new,
        batch: Any = Batch,
    ) -> Batch:
        # (the defaults are locals: the loop runs once per streamed event)
        texts: list[str] = []
        append = texts.append
        content_seen = False
        finish = usage = None
        taken = 0
        for raw in payloads:
            obj = None
            if raw[:1] == b"{":  # (choices_events' own conditions)
                try:
                    if not raw.isascii():
                        raw.decode()  # valid UTF-8 throughout, as the general handler requires
                    obj = decode(raw)
                except (errors, UnicodeDecodeError):
                    obj = None
            if obj is not None and obj.choices and obj.metrics is None:
                choice = obj.choices[0]
                if not chat:
                    text = choice.text
                    if text:
                        append(text)
                        content_seen = True
                elif choice.delta is not None:
                    delta = choice.delta
                    content = delta.content
                    reasoning = delta.reasoning_content or delta.reasoning
                    if not reasoning:
                        if content:
                            append(content)
                            content_seen = True
                    elif isinstance(reasoning, str):
                        append(reasoning + content if content else reasoning)
                        if content:
                            content_seen = True
                    else:
                        obj = None  # not the fast path's: the general reading below
                if obj is not None:
                    # (truth, not None: the record takes a finish or usage only if truthy)
                    if choice.finish_reason:
                        finish = choice.finish_reason
                    if obj.usage:
                        usage = merge_usage(usage, obj.usage)
                    taken += 1
                    continue
            try:
                text, content, got_finish, got_usage, done, error, timing = one(raw, b"")
            except stop:
                break
            if done or error is not None or timing:
                break
            if text:
                append(text)
                if content:
                    content_seen = True
            if got_finish:
                finish = got_finish
            if got_usage:
                usage = merge_usage(usage, got_usage)
            taken += 1
        return new(batch, (taken, texts, content_seen, finish, usage))

    return on_events
