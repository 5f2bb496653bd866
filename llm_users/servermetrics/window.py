"""Scrapes over the measured window -> the `server` figures of the summary.

Counters and histograms count as deltas from the first scrape to the last (a drop means the
server restarted: the new value is what it counted since, as Prometheus' ``increase``), so
server-side percentiles cover exactly the test. Gauges are a time series: mean and max.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from .names import FAMILIES, Known, lookup
from .parse import Parsed

__all__ = ["MAX_POINTS", "NOT_REPORTED", "Window", "histogram_quantile"]

NOT_REPORTED = "not reported by the server"
MAX_POINTS = 3600  # per-scrape series kept for charts; past this every other point is dropped
_HISTOGRAMS = ("ttft", "itl", "tpot", "queue_time", "e2e")


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile (0..1) of cumulative ``(upper bound, count)`` buckets, as PromQL does it.

    Linear interpolation inside the bucket holding rank ``q * count`` (from 0 for the first
    bucket); a rank in the +Inf bucket gives the highest finite bound. None without samples.
    """
    b = sorted(buckets)
    if len(b) < 2 or not math.isinf(b[-1][0]):
        return None
    counts = [c for _, c in b]
    for i in range(1, len(counts)):  # scrapes are not atomic: keep the counts monotonic
        counts[i] = max(counts[i], counts[i - 1])
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    i = bisect_left(counts, rank)
    if i == len(b) - 1:
        return b[-2][0]
    upper = b[i][0]
    if i == 0 and upper <= 0:
        return upper
    lower, below = (b[i - 1][0], counts[i - 1]) if i > 0 else (0.0, 0.0)
    in_bucket = counts[i] - below
    return lower + (upper - lower) * ((rank - below) / in_bucket) if in_bucket else upper


def quantile_bucket(q: float, buckets: list[tuple[float, float]]) -> tuple[float, float] | None:
    """The bounds (lower, upper) of the bucket that holds the q-quantile: the resolution of
    :func:`histogram_quantile`'s answer. The +Inf bucket gives (highest finite bound, inf)."""
    b = sorted(buckets)
    if len(b) < 2 or not math.isinf(b[-1][0]) or b[-1][1] <= 0:
        return None
    counts = [c for _, c in b]
    for i in range(1, len(counts)):
        counts[i] = max(counts[i], counts[i - 1])
    i = bisect_left(counts, q * counts[-1])
    return (b[i - 1][0] if i > 0 else 0.0, b[i][0])


@dataclass
class _Hist:
    """Cumulative bucket counts (upper bound -> count), sum and count."""

    buckets: dict[float, float] = field(default_factory=dict)
    total: float = 0.0
    count: float = 0.0

    def dropped_below(self, prev: _Hist) -> bool:
        if self.count < prev.count:
            return True
        return any(self.buckets.get(le, 0.0) < c for le, c in prev.buckets.items())

    def add(self, cur: _Hist, prev: _Hist | None) -> None:
        """Add ``cur - prev`` (or all of ``cur`` after a reset) to this accumulator."""
        if prev is not None and cur.dropped_below(prev):
            prev = None
        for le, c in cur.buckets.items():
            self.buckets[le] = (
                self.buckets.get(le, 0.0) + c - (prev.buckets.get(le, 0.0) if prev else 0.0)
            )
        self.total += cur.total - (prev.total if prev else 0.0)
        self.count += cur.count - (prev.count if prev else 0.0)


def _value(fam: Metric, known: Known) -> float | None:
    """A gauge or counter, all label sets combined (sum, or mean for ratios)."""
    want = fam.name + "_total" if fam.type == "counter" else fam.name
    values = [s.value for s in fam.samples if s.name in (want, fam.name)]
    if not values:
        return None
    return sum(values) / len(values) if known.combine == "mean" else sum(values)


def _hist(fam: Metric) -> _Hist:
    """A histogram (or a summary: sum and count only), all label sets added up."""
    h = _Hist()
    name = fam.name
    for s in fam.samples:
        if s.name == name + "_bucket":
            le = float(s.labels.get("le", "nan"))
            if not math.isnan(le):
                h.buckets[le] = h.buckets.get(le, 0.0) + s.value
        elif s.name == name + "_sum":
            h.total += s.value
        elif s.name == name + "_count":
            h.count += s.value
    return h


def _interval_ms(cur: _Hist, prev: _Hist | None, name: str) -> dict[str, float]:
    """Mean and p50 (ms) of what a histogram counted since the previous scrape, for charts."""
    d = _Hist()
    d.add(cur, prev)
    if d.count <= 0:
        return {}
    out = {f"{name}_mean_ms": round(d.total / d.count * 1000.0, 3)}
    p50 = histogram_quantile(0.5, list(d.buckets.items()))
    if p50 is not None:
        out[f"{name}_p50_ms"] = round(p50 * 1000.0, 3)
    return out


class Window:
    """Feed it every scrape of the test (the first is the baseline); read :meth:`result`."""

    def __init__(
        self, source: str, max_points: int = MAX_POINTS, families: tuple[Known, ...] = FAMILIES
    ) -> None:
        self.source = source
        self.max_points = max_points
        self.known = families  # which names this page is read for (a server's, or GPUs')
        self.label_sets: dict[str, int] = {}  # common name -> most label sets in one scrape
        self.families: dict[str, str] = {}  # common name -> family used
        self.scrapes = 0
        self.failed = 0
        self.last_note: str | None = None
        self.t0: float | None = None
        self.t_last: float | None = None
        self._prev_counter: dict[str, float] = {}
        self._counters: dict[str, float] = {}
        self._prev_hist: dict[str, _Hist] = {}
        self._hists: dict[str, _Hist] = {}
        self._gauge_n: dict[str, int] = {}
        self._gauge_sum: dict[str, float] = {}
        self._gauge_max: dict[str, float] = {}
        self.series: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}  # the last good scrape's gauges (series skips some)
        self._stride = 1
        self._n_series = 0

    def add(self, t: float, parsed: Parsed) -> None:
        """One scrape taken at ``t`` (seconds, any monotonic clock)."""
        if not parsed.ok:
            self.failed += 1
            self.last_note = parsed.note
            return
        first = self.t0 is None
        if self.t0 is None:
            self.t0 = t
        self.t_last = t
        self.scrapes += 1
        fams = parsed.families
        point: dict[str, Any] = {"t": round(t - self.t0, 3)}
        for common, (known, name) in lookup(set(fams), self.known).items():
            self.families.setdefault(common, name)
            fam = fams[name]
            if known.kind != "histogram":
                sets = len({tuple(sorted(x.labels.items())) for x in fam.samples})
                self.label_sets[common] = max(self.label_sets.get(common, 0), sets)
            if known.kind == "histogram":
                cur = _hist(fam)
                acc = self._hists.setdefault(common, _Hist())
                # a family first seen after the baseline was created during the test: from 0
                prev_h = self._prev_hist.get(common) if not first else cur
                acc.add(cur, prev_h)
                self._prev_hist[common] = cur
                if common == "ttft" and not first:
                    point.update(_interval_ms(cur, prev_h, "ttft"))
                continue
            v = _value(fam, known)
            if v is None:
                continue
            if known.kind == "counter":
                prev = v if first else self._prev_counter.get(common, 0.0)
                delta = v - prev if v >= prev else v  # a drop: the server restarted
                self._counters[common] = self._counters.get(common, 0.0) + delta
                self._prev_counter[common] = v
            else:
                self._gauge_n[common] = self._gauge_n.get(common, 0) + 1
                self._gauge_sum[common] = self._gauge_sum.get(common, 0.0) + v
                self._gauge_max[common] = max(self._gauge_max.get(common, -math.inf), v)
                point[common] = v
        self.last = point
        self._keep(point)

    def _keep(self, point: dict[str, Any]) -> None:
        if self._n_series % self._stride == 0:
            self.series.append(point)
            if len(self.series) > self.max_points:
                self.series = self.series[::2]
                self._stride *= 2
        self._n_series += 1

    # -- the summary's `server` dict ------------------------------------------------------
    def _dist_ms(self, common: str) -> dict[str, Any] | str:
        h = self._hists.get(common)
        if h is None:
            return NOT_REPORTED
        out: dict[str, Any] = {
            "count": int(h.count),
            "mean": h.total / h.count * 1000.0 if h.count > 0 else None,
        }
        pairs = list(h.buckets.items())
        all_zero = h.count > 0 and h.total == 0  # every sample was 0 (e.g. no queueing at all)
        for p in (50, 90, 99):
            v = histogram_quantile(p / 100, pairs) if pairs else None
            out[f"p{p}"] = 0.0 if all_zero else (v * 1000.0 if v is not None else None)
            bucket = quantile_bucket(p / 100, pairs) if pairs else None
            if bucket is not None:  # what the server's buckets allow: the answer is in here
                out[f"p{p}_bucket"] = [bucket[0] * 1000.0, bucket[1] * 1000.0]
        return out

    def _gauge(self, common: str) -> dict[str, float] | str:
        n = self._gauge_n.get(common)
        if not n:
            return NOT_REPORTED
        return {"mean": self._gauge_sum[common] / n, "max": self._gauge_max[common]}

    def gauge(self, common: str) -> dict[str, float] | None:
        """A gauge's mean and max over the scrapes, or None when no scrape had it."""
        g = self._gauge(common)
        return g if isinstance(g, dict) else None

    def counter(self, common: str) -> float | None:
        """A counter's increase from the first scrape to the last, or None when absent."""
        return self._counters.get(common)

    def _hit_rate(self) -> float | str | None:
        q = self._counters.get("prefix_cache_queries")
        if q is not None:
            return self._counters.get("prefix_cache_hits", 0.0) / q if q > 0 else None
        g = self._gauge("prefix_cache_hit_rate")  # SGLang reports the rate itself
        return g["mean"] if isinstance(g, dict) else NOT_REPORTED

    def result(self) -> dict[str, Any]:
        """The `server` dict: figures over the window, "not reported by the server" if absent."""
        out: dict[str, Any] = {
            "source": self.source,
            "scrapes": self.scrapes,
            "failed_scrapes": self.failed,
            "window_s": self.t_last - self.t0
            if self.t0 is not None and self.t_last is not None
            else 0.0,
            "families": dict(sorted(self.families.items())),
        }
        if self.last_note:
            out["last_error"] = self.last_note
        for common in _HISTOGRAMS:
            out[f"{common}_ms"] = self._dist_ms(common)
        for common in ("running", "waiting", "kv_cache_usage"):
            out[common] = self._gauge(common)
        out["prefix_cache_hit_rate"] = self._hit_rate()
        for common in ("generation_tokens", "prompt_tokens", "requests_finished"):
            v = self._counters.get(common)
            out[common] = v if v is not None else NOT_REPORTED
        out["series"] = list(self.series)
        return out
