"""Anthropic's Messages API (/v1/messages): a whole message, and a stream's timed events as
Anthropic sends them (message_start ... message_stop, thinking blocks before the text)."""

from __future__ import annotations

from typing import Any

import orjson

from .payloads import Job

__all__ = ["ERROR", "Event", "messages_body", "messages_events"]

# One timed event: (seconds after arrival, its SSE event type, its data, tokens it carries);
# the data None stands for a malformed (not JSON) line.
Event = tuple[float, str, bytes | None, tuple[int, ...]]
_STOP = {"stop": "end_turn", "length": "max_tokens"}
_SIGNATURE = "c2ltdWxhdGVk"  # thinking blocks end with a signature (opaque to clients)
ERROR = {"type": "error", "error": {"type": "api_error", "message": "simulated failure"}}


def _message(job: Job, content: list[dict[str, Any]], done: bool) -> dict[str, Any]:
    return {
        "id": job.response_id,
        "type": "message",
        "role": "assistant",
        "model": job.model,
        "content": content,
        "stop_reason": _STOP.get(job.finish_reason, job.finish_reason) if done else None,
        "stop_sequence": None,
        "usage": job.messages_usage(None if done else 1),
    }


def messages_body(job: Job, reasoning: str, content: str) -> bytes:
    """A whole (non-streamed) message: a thinking block when there is reasoning, the text."""
    blocks: list[dict[str, Any]] = []
    if job.reasoning_tokens:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": _SIGNATURE})
    blocks.append({"type": "text", "text": content})
    return orjson.dumps(_message(job, blocks, done=True))


def _ev(due: float, kind: str, tokens: tuple[int, ...] = (), **fields: Any) -> Event:
    return (due, kind, orjson.dumps({"type": kind, **fields}), tokens)


def messages_events(
    job: Job,
    token_events: list[tuple[bool, str, int]],
    t0: float,
    itl: float,
    fault: str | None,
    fault_after: int,
) -> tuple[list[Event], bool, float]:
    """The events of a streamed message (``fault``: an in-stream fault, striking once
    ``fault_after`` tokens are out), whether the fault cut it, and when the body ends."""
    out = [_ev(0.0, "message_start", message=_message(job, [], done=False)), _ev(0.0, "ping")]
    index, current = -1, None  # the open content block: its index, thinking or not
    due, sent = t0, 0
    for i, (thinking, text, n) in enumerate(token_events):
        if fault and sent >= fault_after:
            if _inject(out, fault, due):
                return out, True, due
            fault = None
        due = t0 + i * itl
        if current is not thinking:
            index = _switch(out, due, index, current, thinking)
            current = thinking
        delta = {"type": "thinking_delta", "thinking": text} if thinking else {
            "type": "text_delta", "text": text}  # fmt: skip
        out.append(_ev(due, "content_block_delta", (n,), index=index, delta=delta))
        sent += n
    if fault and _inject(out, fault, due):
        return out, True, due
    if current is not False:  # no text yet (reasoning took the whole budget): an empty one
        index = _switch(out, due, index, current, False)
    out.append(_ev(due, "content_block_stop", index=index))
    stop = {"stop_reason": _STOP.get(job.finish_reason, job.finish_reason), "stop_sequence": None}
    usage = {"output_tokens": job.completion_tokens}
    out.append(_ev(due, "message_delta", delta=stop, usage=usage))
    out.append(_ev(due, "message_stop"))
    return out, False, due


def _switch(out: list[Event], due: float, index: int, current: bool | None, thinking: bool) -> int:
    """Close the open block (a thinking one ends with its signature), open the next."""
    if current is not None:
        if current:
            sig = {"type": "signature_delta", "signature": _SIGNATURE}
            out.append(_ev(due, "content_block_delta", index=index, delta=sig))
        out.append(_ev(due, "content_block_stop", index=index))
    block = {"type": "thinking", "thinking": ""} if thinking else {"type": "text", "text": ""}
    out.append(_ev(due, "content_block_start", index=index + 1, content_block=block))
    return index + 1


def _inject(out: list[Event], fault: str, due: float) -> bool:
    """The fault's event, if any; True when the stream ends here."""
    if fault == "error_event":
        out.append((due, "error", orjson.dumps(ERROR), ()))
    elif fault == "bad_json":
        out.append((due, "content_block_delta", None, ()))
        return False
    return True
