"""Per-request figures, one small function each, as defined in the README's "Metrics".

All durations are milliseconds computed from ``perf_counter`` timestamps of a
:class:`~llm_users.record.RequestRecord`. A function returns None when its figure does not
exist for that request (for example ITL needs two token events).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..record import RequestRecord

__all__ = [
    "MAX_USAGE_TOKENS",
    "RequestResult",
    "TokenSource",
    "cached_tokens",
    "e2e_ms",
    "follow_latency_ms",
    "itl_ms",
    "result_of",
    "tpot_ms",
    "ttfc_ms",
    "ttft_ms",
]

Counter = Callable[[str], int]
# A usage count above this is clamped to it, and the request flagged: no request makes 10^12
# tokens, and a million such requests still sum below 2^63, so no total overflows an output
# (orjson refuses ints past 64 bits; a server may send any integer).
MAX_USAGE_TOKENS = 10**12


class TokenSource:
    TOKENIZER = "tokenizer"
    USAGE = "usage"
    EVENTS = "events"
    NONE = "none"


def ttft_ms(r: RequestRecord) -> float | None:
    """Time to first token: first event carrying generated text - start."""
    t = r.first_token_at
    return (t - r.start) * 1000.0 if t is not None else None


def ttfc_ms(r: RequestRecord) -> float | None:
    """Time to first content token (differs from TTFT for reasoning models)."""
    t = r.first_content_at
    return (t - r.start) * 1000.0 if t is not None else None


def e2e_ms(r: RequestRecord) -> float | None:
    """End to end: stream complete (or body read) - start."""
    return (r.end - r.start) * 1000.0 if r.end is not None else None


def follow_latency_ms(r: RequestRecord) -> float | None:
    """The seed's follow latency: end - first token (= total - TTFT)."""
    t = r.first_token_at
    return (r.end - t) * 1000.0 if t is not None and r.end is not None else None


def itl_ms(r: RequestRecord) -> list[float]:
    """Gaps between successive token-carrying events (one gap per event, whatever its size)."""
    t = r.token_times
    return [(b - a) * 1000.0 for a, b in zip(t, t[1:], strict=False)]


def tpot_ms(follow_ms: float | None, follow_tokens: int | None) -> float | None:
    """Time per output token after the first: follow latency / follow tokens."""
    if follow_ms is None or not follow_tokens or follow_tokens <= 0:
        return None
    return follow_ms / follow_tokens


@dataclass(slots=True)
class RequestResult:
    """The figures of one finished request: what events, aggregates and records carry."""

    endpoint: str
    stream: bool
    ok: bool
    start_wall: float
    e2e_ms: float | None
    status: int = 0
    failure: str | None = None
    message: str | None = None
    ttft_ms: float | None = None
    ttfc_ms: float | None = None
    follow_latency_ms: float | None = None
    follow_tokens: int | None = None
    first_event_tokens: int | None = None  # streaming: the first token event's tokens
    follow_source: str = TokenSource.NONE
    output_tokens: int | None = None
    output_source: str = TokenSource.NONE
    prompt_tokens: int | None = None
    total_tokens: int | None = None
    usage_completion_tokens: int | None = None
    tokenizer_output_tokens: int | None = None
    tpot_ms: float | None = None
    itl_ms: list[float] = field(default_factory=list)
    token_events: int = 0
    retries: int = 0  # sent again on a fresh connection (the reused one closed unanswered)
    # Token events read together with the first one (after it, in the same read), and how
    # late the first token's stamp may then be: that read's time minus the read before.
    merged_first: int = 0
    first_token_bound_ms: float | None = None
    send_ms: float | None = None  # start -> the request's last byte handed to the kernel
    max_tokens: int | None = None
    finish_reason: str | None = None
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens, if given
    server_timing: dict[str, float] | None = None  # the server's per-request timing, if sent
    queue_delay_ms: float | None = None  # open loop: actual start - intended start
    slo_met: bool | None = None  # set by the plugin when --slo is given
    warmup: bool = False  # started in the warm-up: in no figure
    turn: int | None = None  # conversations: the turn index (1-based)
    truncated: bool = False  # conversations: history cut to --max-context-tokens
    conversation_done: bool = False  # conversations: the last turn of a completed one
    trace_id: str | None = None  # the traceparent's ids sent with it (--trace-context)
    span_id: str | None = None
    session_id: str | None = None  # the --session-header value sent with it
    usage_clamped: bool = False  # a usage count past MAX_USAGE_TOKENS was clamped to it
    cancelled: bool = False  # hung up on purpose (--cancel-rate): not ok, not a failure
    items: int | None = None  # embeddings: inputs embedded; rerank: documents scored

    @property
    def speed(self) -> float | None:
        """The seed's per-request speed: non-streaming total tokens/s, streaming follow tokens/s."""
        if not self.ok:  # a failed request has no speed, even if usage and e2e_ms were seen
            return None
        if self.stream:
            if self.follow_tokens is None or not self.follow_latency_ms:
                return None
            return self.follow_tokens / (self.follow_latency_ms / 1000.0)
        if self.total_tokens is None or not self.e2e_ms:
            return None
        return self.total_tokens / (self.e2e_ms / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _usage_int(usage: dict[str, Any] | None, key: str) -> int | None:
    if not usage:
        return None
    v = usage.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def usage_clamped(usage: dict[str, Any] | None) -> bool:
    """Whether a count read by :func:`result_of` is past :data:`MAX_USAGE_TOKENS`."""
    if not usage:
        return False
    details = [usage.get(k) for k in ("prompt_tokens_details", "input_tokens_details")]
    counts = [usage.get(k) for k in ("completion_tokens", "prompt_tokens", "total_tokens")]
    counts += [d.get("cached_tokens") for d in details if isinstance(d, dict)]
    return any(isinstance(v, int) and v > MAX_USAGE_TOKENS for v in counts)


def _clamped(n: int | None) -> int | None:
    return n if n is None or n <= MAX_USAGE_TOKENS else MAX_USAGE_TOKENS


def cached_tokens(usage: dict[str, Any] | None) -> int | None:
    """Prompt tokens the server found in its prefix cache; None when it does not say
    (``prompt_tokens_details.cached_tokens``, or the Responses API's ``input_tokens_details``)."""
    if not usage:
        return None
    for key in ("prompt_tokens_details", "input_tokens_details"):
        details = usage.get(key)
        if isinstance(details, dict):
            n = _usage_int(details, "cached_tokens")
            if n is not None:
                return _clamped(n)
    return None


def result_of(r: RequestRecord, count_tokens: Counter | None = None) -> RequestResult:
    """Derive every per-request figure from a record (token counts: tokenizer > usage > events)."""
    res = RequestResult(
        endpoint=r.endpoint,
        stream=r.stream,
        ok=r.ok,
        start_wall=r.start_wall,
        e2e_ms=e2e_ms(r),
        status=r.status,
        failure=r.failure,
        message=r.message,
        max_tokens=r.max_tokens,
        finish_reason=r.finish_reason,
        token_events=len(r.token_times),
        retries=r.retries,
        warmup=r.warmup,
        turn=r.turn,
        truncated=r.truncated,
        conversation_done=r.conversation_done,
        server_timing=r.server_timing,
        trace_id=r.trace_id,
        span_id=r.span_id,
        session_id=r.session_id,
        cancelled=r.cancelled,
        items=r.items,
    )
    if r.intended_start is not None:
        res.queue_delay_ms = (r.start - r.intended_start) * 1000.0
    if r.sent_at is not None:
        res.send_ms = (r.sent_at - r.start) * 1000.0
    usage = r.usage
    completion = _clamped(_usage_int(usage, "completion_tokens"))
    res.usage_completion_tokens = completion
    res.prompt_tokens = _clamped(_usage_int(usage, "prompt_tokens"))
    res.total_tokens = _clamped(_usage_int(usage, "total_tokens"))
    res.usage_clamped = usage_clamped(usage)
    res.cached_tokens = cached_tokens(usage)
    if res.total_tokens is None and completion is not None and res.prompt_tokens is not None:
        res.total_tokens = completion + res.prompt_tokens
    if not r.ok:
        return res  # failures keep their counts out of every latency figure
    if not r.stream:
        _non_streaming_tokens(res, r, completion, count_tokens)
        return res

    res.ttft_ms = ttft_ms(r)
    res.ttfc_ms = ttfc_ms(r)
    _merged_first(res, r)
    res.follow_latency_ms = follow_latency_ms(r)
    res.itl_ms = itl_ms(r)
    n_events = len(r.token_times)
    if count_tokens is not None and n_events:
        first = count_tokens(r.texts[0])
        follow = count_tokens("".join(r.texts[1:])) if n_events > 1 else 0
        res.first_event_tokens = first
        res.follow_tokens, res.follow_source = follow, TokenSource.TOKENIZER
        res.output_tokens, res.output_source = first + follow, TokenSource.TOKENIZER
        res.tokenizer_output_tokens = first + follow
    elif completion is not None and n_events:
        # Usage counts every generated token; the first event's share is not reported, so
        # take it as the mean tokens per event (exact when every event carries k tokens).
        first = min(completion, max(1, round(completion / n_events)))
        res.first_event_tokens = first
        res.follow_tokens, res.follow_source = completion - first, TokenSource.USAGE
        res.output_tokens, res.output_source = completion, TokenSource.USAGE
    else:
        res.follow_tokens = max(0, n_events - 1)
        res.first_event_tokens = 1 if n_events else None
        res.follow_source = TokenSource.EVENTS
        res.output_tokens, res.output_source = n_events, TokenSource.EVENTS
    res.tpot_ms = tpot_ms(res.follow_latency_ms, res.follow_tokens)
    return res


def _merged_first(res: RequestResult, r: RequestRecord) -> None:
    """The first token read together with later ones: they share the read's stamp."""
    times = r.token_times
    if len(times) < 2 or times[1] != times[0]:
        return
    first = times[0]
    n = 1
    while n < len(times) and times[n] == first:
        n += 1
    res.merged_first = n - 1
    if r.before_first is not None:
        res.first_token_bound_ms = max(0.0, (first - r.before_first) * 1000.0)


def _non_streaming_tokens(
    res: RequestResult, r: RequestRecord, completion: int | None, count_tokens: Counter | None
) -> None:
    if count_tokens is not None and r.texts:
        res.tokenizer_output_tokens = count_tokens(r.texts[0])
    if completion is not None:
        res.output_tokens, res.output_source = completion, TokenSource.USAGE
    elif res.tokenizer_output_tokens is not None:
        res.output_tokens, res.output_source = res.tokenizer_output_tokens, TokenSource.TOKENIZER
