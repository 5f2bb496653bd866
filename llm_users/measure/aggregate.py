"""Request results -> counters and histograms that merge exactly (across users and workers).

The aggregate knows nothing of Locust. A worker sends :meth:`Aggregate.to_dict` deltas to
the master, which adds them with :meth:`Aggregate.merge`; the summary reads a snapshot.
Memory is bounded whatever the number of requests: sums, counters and fixed-resolution
histograms only.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from .histogram import CoarseHistogram, Histogram
from .per_request import RequestResult

__all__ = ["Aggregate", "HISTOGRAMS", "MAX_BUCKETS", "TimeBucket"]

MAX_BUCKETS = 3600  # time-series buckets kept: one per second for an hour, then coarser

# name -> what is recorded (see the README's "Metrics")
HISTOGRAMS = (
    "ttft_ms",
    "ttfc_ms",
    "itl_ms",
    "tpot_ms",
    "e2e_ms",
    "latency_ms",
    "queue_delay_ms",
    "ttft_from_intended_ms",
    "e2e_from_intended_ms",  # open loop
    "ttft_cached_ms",  # TTFT of requests with >= half their prompt in the server's cache
    "ttft_uncached_ms",  # ... and of the others, when the server reports cached tokens
    "tokens_per_event",  # a ratio, not ms: output tokens / token-carrying events, per request
    "first_token_bound_ms",  # how late a merged first token's stamp may be (per_request.py)
    "send_ms",  # start -> the request written to the kernel: inside TTFT and E2E, not the server's
)
_SUMS = (
    # the seed's means, streaming
    "ttft_ms",
    "follow_latency_ms",
    "follow_tokens",
    "follow_speed",
    # the seed's means, non-streaming
    "latency_ms",
    "total_tokens",
    "speed",
    # totals
    "output_tokens",
    "prompt_tokens",
    "token_diff_abs",
    # prefix cache, over the requests whose server reported cached tokens
    "cached_tokens",
    "cache_prompt_tokens",
    # embeddings and rerank: inputs embedded, documents scored
    "items",
)
_COUNTS = (
    "stream_ok",
    "nonstream_ok",
    "token_compared",
    "short_outputs",
    "with_max_tokens",
    "slo_checked",
    "slo_met",
    "cache_reported",
    "mostly_cached",
    "retries",  # requests sent again on a fresh connection (RequestRecord.retries)
    "merged_first",  # streams whose first token was read together with later tokens
    "usage_clamped",  # requests with a usage count clamped to MAX_USAGE_TOKENS
    "cancelled",  # hung up on purpose (--cancel-rate): neither ok nor failed, in no figure
)


class TimeBucket:
    """One second of the run (by request end time): counts, tokens, coarse TTFT and E2E."""

    __slots__ = ("ok", "failed", "tokens", "ttft", "e2e")

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.tokens = 0
        self.ttft = CoarseHistogram()
        self.e2e = CoarseHistogram()

    def merge(self, o: TimeBucket) -> None:
        self.ok += o.ok
        self.failed += o.failed
        self.tokens += o.tokens
        self.ttft.merge(o.ttft)
        self.e2e.merge(o.e2e)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.failed,
            "tokens": self.tokens,
            "ttft": self.ttft.to_dict(),
            "e2e": self.e2e.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimeBucket:
        b = cls()
        b.ok, b.failed, b.tokens = d["ok"], d["failed"], d["tokens"]
        b.ttft = CoarseHistogram.from_dict(d["ttft"])
        b.e2e = CoarseHistogram.from_dict(d["e2e"])
        return b


class Aggregate:
    """Counters, sums and histograms of finished requests, and a per-second time series."""

    def __init__(self) -> None:
        self.requests = 0  # successful
        self.failures: Counter[str] = Counter()
        self.failure_examples: dict[str, str] = {}
        self.sums: dict[str, float] = dict.fromkeys(_SUMS, 0.0)
        self.counts: dict[str, int] = dict.fromkeys(_COUNTS, 0)
        self.sources: Counter[str] = Counter()  # follow-token count source -> requests
        self.token_diff_max = 0
        self.hist: dict[str, Histogram] = {name: Histogram() for name in HISTOGRAMS}
        self.tokens_per_event = Counter[int]()  # tokens -> events (tokenizer runs only)
        self.first_start: float | None = None  # wall clock of the measured period
        self.last_end: float | None = None
        self.timeline: dict[int, TimeBucket] = {}  # first second of a bucket -> bucket
        self.timeline_step = 1  # seconds per bucket: doubles past MAX_BUCKETS (long runs)

    # -- recording -------------------------------------------------------------------------
    def add(self, r: RequestResult) -> None:
        end = r.start_wall + (r.e2e_ms or 0.0) / 1000.0
        self._period(r.start_wall, end)
        bucket = self._bucket(int(end))
        if r.retries:
            self.counts["retries"] += r.retries
        if r.cancelled:
            self.counts["cancelled"] += 1
            return
        if r.usage_clamped:
            self.counts["usage_clamped"] += 1
        if r.slo_met is not None:
            self.counts["slo_checked"] += 1
            self.counts["slo_met"] += r.slo_met
        if not r.ok:
            kind = r.failure or "unknown"
            self.failures[kind] += 1
            self.failure_examples.setdefault(kind, r.message or "")
            bucket.failed += 1
            return
        self.requests += 1
        bucket.ok += 1
        bucket.tokens += r.output_tokens or 0
        if r.e2e_ms is not None:
            bucket.e2e.record(r.e2e_ms)
        if r.ttft_ms is not None:
            bucket.ttft.record(r.ttft_ms)
        s, h, c = self.sums, self.hist, self.counts
        if r.send_ms is not None:
            h["send_ms"].record(r.send_ms)
        q = r.queue_delay_ms
        if q is not None:
            h["queue_delay_ms"].record(q)
            if r.e2e_ms is not None:
                h["e2e_from_intended_ms"].record(r.e2e_ms + q)
            if r.ttft_ms is not None:
                h["ttft_from_intended_ms"].record(r.ttft_ms + q)
        if r.output_tokens is not None:
            s["output_tokens"] += r.output_tokens
        if r.prompt_tokens is not None:
            s["prompt_tokens"] += r.prompt_tokens
        if r.items is not None:
            s["items"] += r.items
        if r.cached_tokens is not None and r.prompt_tokens:
            self._cache(r)
        if r.max_tokens:
            c["with_max_tokens"] += 1
            if r.output_tokens is not None and r.output_tokens < r.max_tokens:
                c["short_outputs"] += 1
        if r.tokenizer_output_tokens is not None and r.usage_completion_tokens is not None:
            diff = abs(r.tokenizer_output_tokens - r.usage_completion_tokens)
            c["token_compared"] += 1
            s["token_diff_abs"] += diff
            self.token_diff_max = max(self.token_diff_max, diff)
        if r.stream:
            c["stream_ok"] += 1
            self.sources[r.follow_source] += 1
            s["ttft_ms"] += r.ttft_ms or 0.0
            s["follow_latency_ms"] += r.follow_latency_ms or 0.0
            s["follow_tokens"] += r.follow_tokens or 0
            s["follow_speed"] += r.speed or 0.0
            if r.ttft_ms is not None:
                h["ttft_ms"].record(r.ttft_ms)
            if r.ttfc_ms is not None:
                h["ttfc_ms"].record(r.ttfc_ms)
            if r.merged_first:
                c["merged_first"] += 1
                if r.first_token_bound_ms is not None:
                    h["first_token_bound_ms"].record(r.first_token_bound_ms)
            if r.e2e_ms is not None:
                h["e2e_ms"].record(r.e2e_ms)
            if r.tpot_ms is not None:
                h["tpot_ms"].record(r.tpot_ms)
            h["itl_ms"].record_many(r.itl_ms)
            if r.token_events and r.output_tokens is not None:
                h["tokens_per_event"].record(r.output_tokens / r.token_events)
        else:
            c["nonstream_ok"] += 1
            self.sources[r.output_source] += 1
            s["latency_ms"] += r.e2e_ms or 0.0
            s["total_tokens"] += r.total_tokens or 0
            s["speed"] += r.speed or 0.0
            if r.e2e_ms is not None:
                h["latency_ms"].record(r.e2e_ms)

    def _cache(self, r: RequestResult) -> None:
        """Prefix-cache figures of a request whose server said how much of its prompt hit."""
        assert r.cached_tokens is not None and r.prompt_tokens
        self.counts["cache_reported"] += 1
        self.sums["cached_tokens"] += r.cached_tokens
        self.sums["cache_prompt_tokens"] += r.prompt_tokens
        mostly = 2 * r.cached_tokens >= r.prompt_tokens
        self.counts["mostly_cached"] += mostly
        if r.stream and r.ttft_ms is not None:
            self.hist["ttft_cached_ms" if mostly else "ttft_uncached_ms"].record(r.ttft_ms)

    def _period(self, start: float, end: float) -> None:
        if self.first_start is None or start < self.first_start:
            self.first_start = start
        if self.last_end is None or end > self.last_end:
            self.last_end = end

    # -- merging and the wire format -------------------------------------------------------
    def merge(self, other: Aggregate) -> None:
        self.requests += other.requests
        self.failures.update(other.failures)
        for k, v in other.failure_examples.items():
            self.failure_examples.setdefault(k, v)
        for key, total in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + total
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.sources.update(other.sources)
        self.token_diff_max = max(self.token_diff_max, other.token_diff_max)
        for name, hist in other.hist.items():
            self.hist.setdefault(name, Histogram()).merge(hist)
        self.tokens_per_event.update(other.tokens_per_event)
        if other.first_start is not None:
            self._period(other.first_start, other.last_end or other.first_start)
        for sec, b in other.timeline.items():
            self._bucket(sec).merge(b)
        while other.timeline_step > self.timeline_step:
            self._coarsen()

    def _bucket(self, second: int) -> TimeBucket:
        key = second - second % self.timeline_step
        bucket = self.timeline.get(key)
        if bucket is None:
            bucket = self.timeline[key] = TimeBucket()
            if len(self.timeline) > MAX_BUCKETS:
                self._coarsen()
                return self._bucket(second)
        return bucket

    def _coarsen(self) -> None:
        """Twice as many seconds per bucket: memory stays bounded however long the run."""
        self.timeline_step *= 2
        old, self.timeline = self.timeline, {}
        for sec, b in old.items():
            key = sec - sec % self.timeline_step
            mine = self.timeline.get(key)
            if mine is None:
                self.timeline[key] = b
            else:
                mine.merge(b)

    @property
    def empty(self) -> bool:
        return not self.requests and not self.failures

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def duration_s(self) -> float:
        if self.first_start is None or self.last_end is None:
            return 0.0
        return max(0.0, self.last_end - self.first_start)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": dict(self.failures),
            "failure_examples": dict(self.failure_examples),
            "sums": dict(self.sums),
            "counts": dict(self.counts),
            "sources": dict(self.sources),
            "token_diff_max": self.token_diff_max,
            "hist": {k: h.to_dict() for k, h in self.hist.items() if h.count},
            "tokens_per_event": {str(k): v for k, v in self.tokens_per_event.items()},
            "first_start": self.first_start,
            "last_end": self.last_end,
            "timeline": {str(k): b.to_dict() for k, b in self.timeline.items()},
            "timeline_step": self.timeline_step,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Aggregate:
        a = cls()
        a.requests = d["requests"]
        a.failures.update(d["failures"])
        a.failure_examples.update(d["failure_examples"])
        a.sums.update(d["sums"])
        a.counts.update(d["counts"])
        a.sources.update(d["sources"])
        a.token_diff_max = d["token_diff_max"]
        for k, h in d["hist"].items():
            a.hist[k] = Histogram.from_dict(h)
        a.tokens_per_event.update({int(k): v for k, v in d.get("tokens_per_event", {}).items()})
        a.first_start, a.last_end = d["first_start"], d["last_end"]
        a.timeline = {int(k): TimeBucket.from_dict(b) for k, b in d.get("timeline", {}).items()}
        a.timeline_step = int(d.get("timeline_step", 1))
        return a

    def timeseries(self) -> list[dict[str, Any]]:
        """Per second of the run: requests, failures, output tokens/s, TTFT and E2E p50/p99.

        A bucket of several seconds (long runs) gives each of its seconds its mean rates and
        its percentiles.
        """
        rows: list[dict[str, Any]] = []
        step = self.timeline_step
        for start in sorted(self.timeline):
            b = self.timeline[start]
            row = {
                "requests": b.ok / step,
                "failures": b.failed / step,
                "output_tokens_per_s": b.tokens / step,
                "ttft_p50_ms": b.ttft.percentile(50),
                "ttft_p99_ms": b.ttft.percentile(99),
                "e2e_p50_ms": b.e2e.percentile(50),
                "e2e_p99_ms": b.e2e.percentile(99),
            }
            rows.extend({"t": start + i, **row} for i in range(step))
        return rows

    def mean(self, key: str, count_key: str) -> float | None:
        n = self.counts.get(count_key, 0)
        return self.sums[key] / n if n else None


def finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
