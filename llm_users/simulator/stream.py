"""SSE framing for each stream-shape knob, and the timed plan of writes of one stream."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache

import orjson

from . import payloads as p
from .config import LINE_ENDINGS, SimConfig
from .messages import messages_events
from .vocab import VOCABS

ERROR_EVENT = orjson.dumps(
    {"error": {"message": "simulated failure", "type": "server_error", "code": 500}}
)
BAD_JSON = b"this is not json"
DONE = b"[DONE]"
# Faults that act inside a 200 stream once ``fault_after`` tokens are out.
STREAM_FAULTS = frozenset({"error_event", "bad_json", "drop", "truncate"})
# Stands for the response id in cached plans (token text cannot contain it).
_ID_MARK = "@@response-id@@"


class Framer:
    """Turns payloads into event bytes with the configured line ending, spacing and fields."""

    __slots__ = ("_eol", "_sep", "_comment", "_fields", "_count")

    def __init__(self, cfg: SimConfig) -> None:
        self._eol = LINE_ENDINGS[cfg.line_ending].encode()
        self._sep = b":" if cfg.no_space else b": "
        self._comment = b": ping" + self._eol if cfg.comments else b""
        self._fields = cfg.fields
        self._count = 0

    def event(self, data: bytes, kind: str | None = None) -> bytes:
        """One event; ``kind`` names it on an ``event:`` line (the Responses API's type)."""
        self._count += 1
        eol, sep = self._eol, self._sep
        head = self._comment
        if kind is not None and not self._fields:
            head += b"event" + sep + kind.encode() + eol
        elif self._fields:
            name = b"message" if kind is None else kind.encode()
            head += b"event" + sep + name + eol + b"id" + sep + b"%d" % self._count + eol
            if self._count == 1:
                head += b"retry" + sep + b"3000" + eol
        return head + b"data" + sep + data + eol + eol


def keepalive_bytes(cfg: SimConfig) -> bytes:
    """The comment sent while the first token is awaited."""
    eol = LINE_ENDINGS[cfg.line_ending].encode()
    return b": keep-alive" + eol + eol


@dataclass(slots=True)
class Write:
    """Bytes to write ``due`` seconds after the request arrived."""

    due: float
    data: bytes
    token_events: tuple[int, ...] = ()  # tokens of each token-carrying event inside


@dataclass(slots=True)
class Plan:
    """Every write of one stream, and how the body ends."""

    writes: list[Write] = field(default_factory=list)
    cut: bool = False  # a fault ends the stream early
    abort: bool = False  # end by aborting the TCP connection instead of a clean end
    end_due: float = 0.0  # when the body ends (a cut before any token still waits for it)


def token_events(cfg: SimConfig, job: p.Job) -> list[tuple[bool, str, int]]:
    """(is_reasoning, text, tokens) per token event: reasoning first, k tokens per event."""
    texts = p.token_texts(cfg.vocab, job.rid, job.completion_tokens)
    k = cfg.tokens_per_chunk
    r = job.reasoning_tokens
    out = []
    for lo, hi, reasoning in ((0, r, True), (r, len(texts), False)):
        for i in range(lo, hi, k):
            part = texts[i : min(i + k, hi)]
            out.append((reasoning, "".join(part), len(part)))
    return out


def first_token_delay(cfg: SimConfig, fault: str | None, job: p.Job | None = None) -> float:
    """Seconds from arrival (or leaving the queue) to the first token: ttft_ms, the prefill of
    ``job``'s uncached and cached prompt tokens, and a stall."""
    ms = cfg.ttft_ms + (cfg.stall_ms if fault == "stall" else 0.0)
    if job is not None:
        uncached = job.prompt_tokens - job.cached_tokens
        ms += cfg.prefill_ms_per_1k_tokens * uncached / 1000.0
        ms += cfg.cached_prefill_ms_per_1k_tokens * job.cached_tokens / 1000.0
    return ms / 1000.0


def build_plan(cfg: SimConfig, job: p.Job, fault: str | None) -> Plan:
    """The plan of ``job``: a cached plan of the same shape with this request's id and time."""
    if job.responses or job.messages:  # their ids appear in many places: built afresh
        return make_plan(cfg, job, fault)
    # Requests differ only by id, creation time and where the vocabulary walk starts.
    rid = job.rid % len(VOCABS[cfg.vocab])
    generic = dataclasses.replace(job, rid=rid, response_id=_ID_MARK, created=0)
    template, pieces = _cached_plan(cfg, generic, fault)
    head = p.chunk_head(job)
    writes = [
        Write(w.due, head.join(parts), w.token_events)
        for w, parts in zip(template.writes, pieces, strict=True)
    ]
    return dataclasses.replace(template, writes=writes)


@lru_cache(maxsize=512)
def _cached_plan(cfg: SimConfig, job: p.Job, fault: str | None) -> tuple[Plan, list[list[bytes]]]:
    """A generic plan, with each write's bytes pre-split where the per-request head goes."""
    plan = make_plan(cfg, job, fault)
    head = p.chunk_head(job)
    return plan, [w.data.split(head) for w in plan.writes]


def make_plan(cfg: SimConfig, job: p.Job, fault: str | None) -> Plan:
    """The writes of a streamed response, with shape knobs and an in-stream fault applied."""
    fr = Framer(cfg)
    plan = Plan()
    if job.responses:
        head, items, plan.cut, plan.end_due = ResponsesEvents(cfg, job, fr).build(fault)
        plan.writes += head
    elif job.messages:
        head, items, plan.cut, plan.end_due = _messages(cfg, job, fault, fr)
        plan.writes += head
    else:
        if job.chat and cfg.role_chunk:
            plan.writes.append(Write(0.0, fr.event(p.role_chunk(job))))
        items, plan.cut, plan.end_due = _events(cfg, job, fault, fr)
    t0 = first_token_delay(cfg, fault, job)
    if cfg.burst:
        plan.writes += _group(items, max(len(items), 1), due=t0)
        plan.end_due = t0  # the whole rest went out at once
    elif cfg.merge_events > 1:
        plan.writes += _group(items, cfg.merge_events)
    else:
        plan.writes += items
    plan.abort = plan.cut and fault == "drop"
    return plan


def _events(
    cfg: SimConfig, job: p.Job, fault: str | None, fr: Framer
) -> tuple[list[Write], bool, float]:
    """Timed events after the role chunk, whether a fault cut the stream, and the end time."""
    t0 = first_token_delay(cfg, fault, job)
    itl = cfg.itl_ms / 1000.0
    acting = fault if fault in STREAM_FAULTS else None
    items: list[Write] = []
    due, sent = t0, 0
    for i, (reasoning, text, n) in enumerate(token_events(cfg, job)):
        if acting and sent >= cfg.fault_after:
            if _inject(items, acting, fr, due):
                return items, True, due
            acting = None
        due = t0 + i * itl
        chunk = p.reasoning_chunk(job, text) if reasoning else p.content_chunk(job, text)
        items.append(Write(due, fr.event(chunk), (n,)))
        if cfg.empty_deltas and not reasoning:
            items.append(Write(due, fr.event(p.content_chunk(job, ""))))
        sent += n
    # Fewer tokens than fault_after: the fault strikes after the last one.
    if acting and _inject(items, acting, fr, due):
        return items, True, due
    items.append(Write(due, fr.event(p.finish_chunk(job))))
    if job.include_usage:
        items.append(Write(due, fr.event(p.usage_chunk(job))))
    if not cfg.no_done:
        items.append(Write(due, fr.event(DONE)))
    return items, False, due


def _messages(
    cfg: SimConfig, job: p.Job, fault: str | None, fr: Framer
) -> tuple[list[Write], list[Write], bool, float]:
    """A Messages API stream: (writes at arrival, timed writes, cut, end time)."""
    t0 = first_token_delay(cfg, fault, job)
    acting = fault if fault in STREAM_FAULTS else None
    events, cut, end = messages_events(
        job, token_events(cfg, job), t0, cfg.itl_ms / 1000.0, acting, cfg.fault_after
    )
    writes = [Write(due, fr.event(BAD_JSON if data is None else data, kind), n)
              for due, kind, data, n in events]  # fmt: skip
    head = [w for w in writes if w.due < t0]  # message_start and ping: sent at once
    return head, writes[len(head) :], cut, end


def _inject(items: list[Write], fault: str, fr: Framer, due: float) -> bool:
    """Add the fault's event, if any; True when the stream ends here."""
    if fault == "error_event":
        items.append(Write(due, fr.event(ERROR_EVENT)))
    elif fault == "bad_json":
        items.append(Write(due, fr.event(BAD_JSON)))
        return False
    return True


def _group(items: list[Write], size: int, due: float | None = None) -> list[Write]:
    """Merge runs of ``size`` writes into one, written when the last of them is due."""
    out = []
    for i in range(0, len(items), size):
        group = items[i : i + size]
        out.append(
            Write(
                max(w.due for w in group) if due is None else due,
                b"".join(w.data for w in group),
                tuple(n for w in group for n in w.token_events),
            )
        )
    return out


class ResponsesEvents:
    """The events of a streamed Responses API answer, as OpenAI sends them (no ``[DONE]``)."""

    def __init__(self, cfg: SimConfig, job: p.Job, fr: Framer) -> None:
        self.cfg, self.job, self.fr = cfg, job, fr
        self.seq = 0
        self.reasoning_index = 0 if job.reasoning_tokens else -1
        self.message_index = 1 if job.reasoning_tokens else 0

    def ev(self, kind: str, due: float, tokens: tuple[int, ...] = (), **fields: object) -> Write:
        data = p.responses_event(kind, self.seq, **fields)
        self.seq += 1
        return Write(due, self.fr.event(data, kind), tokens)

    def _open(self, out: list[Write], due: float, reasoning: bool) -> None:
        """The output_item.added (and content_part.added) events of an output item."""
        job = self.job
        if reasoning:
            item = p.reasoning_item(job, None)
            out.append(self.ev("response.output_item.added", due, output_index=0, item=item))
            return
        item = p.message_item(job, None)
        index = self.message_index
        out.append(self.ev("response.output_item.added", due, output_index=index, item=item))
        part = p.output_text_part("")
        ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
        out.append(self.ev("response.content_part.added", due, **ids, part=part))

    def _close(self, out: list[Write], due: float, reasoning: bool, text: str) -> None:
        job = self.job
        if reasoning:
            item = p.reasoning_item(job, text)
            ids = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            out.append(self.ev("response.reasoning_text.done", due, **ids, text=text))
            out.append(self.ev("response.output_item.done", due, output_index=0, item=item))
            return
        item = p.message_item(job, text)
        ids = {"item_id": item["id"], "output_index": self.message_index, "content_index": 0}
        out.append(self.ev("response.output_text.done", due, **ids, text=text, logprobs=[]))
        part = p.output_text_part(text)
        out.append(self.ev("response.content_part.done", due, **ids, part=part))
        index = self.message_index
        out.append(self.ev("response.output_item.done", due, output_index=index, item=item))

    def build(self, fault: str | None) -> tuple[list[Write], list[Write], bool, float]:
        """(writes at arrival, timed writes, whether a fault cut the stream, end time)."""
        cfg, job = self.cfg, self.job
        shell = p.response_object(job, "in_progress", [], usage=False)
        head = [
            self.ev("response.created", 0.0, response=shell),
            self.ev("response.in_progress", 0.0, response=shell),
        ]
        self._open(head, 0.0, reasoning=job.reasoning_tokens > 0)
        t0 = first_token_delay(cfg, fault, job)
        itl = cfg.itl_ms / 1000.0
        acting = fault if fault in STREAM_FAULTS else None
        items: list[Write] = []
        texts = {True: [], False: []}  # type: dict[bool, list[str]]
        rs_id, msg_id = p.reasoning_item(job, None)["id"], p.message_item(job, None)["id"]
        due, sent, current = t0, 0, job.reasoning_tokens > 0
        for i, (reasoning, text, n) in enumerate(token_events(cfg, job)):
            if acting and sent >= cfg.fault_after:
                if self._inject(items, acting, due):
                    return head, items, True, due
                acting = None
            due = t0 + i * itl
            if current and not reasoning:  # the reasoning item ends, the message begins
                self._close(items, due, True, "".join(texts[True]))
                self._open(items, due, reasoning=False)
                current = False
            texts[reasoning].append(text)
            if reasoning:
                kind, ids = "response.reasoning_text.delta", (rs_id, self.reasoning_index)
            else:
                kind, ids = "response.output_text.delta", (msg_id, self.message_index)
            extra: dict[str, object] = {} if reasoning else {"logprobs": []}
            items.append(
                self.ev(
                    kind,
                    due,
                    (n,),
                    item_id=ids[0],
                    output_index=ids[1],
                    content_index=0,
                    delta=text,
                    **extra,
                )
            )
            sent += n
        if acting and self._inject(items, acting, due):
            return head, items, True, due
        if current:  # reasoning took the whole budget: an empty message still follows
            self._close(items, due, True, "".join(texts[True]))
            self._open(items, due, reasoning=False)
        self._close(items, due, False, "".join(texts[False]))
        output = [p.reasoning_item(job, "".join(texts[True]))] if job.reasoning_tokens else []
        output.append(p.message_item(job, "".join(texts[False])))
        final = p.response_object(job, "completed", output)
        items.append(self.ev("response.completed", due, response=final))
        return head, items, False, due

    def _inject(self, items: list[Write], fault: str, due: float) -> bool:
        """The fault's event, if any; True when the stream ends here."""
        if fault == "error_event":
            failed = p.response_object(self.job, "failed", [], usage=False)
            failed["error"] = {"code": "server_error", "message": "simulated failure"}
            items.append(self.ev("response.failed", due, response=failed))
        elif fault == "bad_json":
            items.append(Write(due, self.fr.event(BAD_JSON)))
            return False
        return True
