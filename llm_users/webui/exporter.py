"""The load generator's own /metrics: the live aggregate in Prometheus' text format.

A custom collector on its own registry (never the global one): each scrape reads the
aggregate through a callable and turns our exact histograms (ms) into Prometheus histograms
in seconds, bucket by bucket with :meth:`Histogram.ranks_below`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from ..measure.aggregate import Aggregate
from ..measure.histogram import Histogram

__all__ = ["BUCKETS_S", "METRIC_NAMES", "AggregateCollector", "make_registry", "render"]

PREFIX = "llm_users"
# Upper bounds in seconds, for LLM serving: TTFT from 10 ms (cached prefix, small model) to
# 80 s (long prompts in a full queue); ITL/TPOT from 1 ms to 2.5 s; E2E up to 10 minutes.
_TOKEN_GAPS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04)
_TOKEN_GAPS += (0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)
BUCKETS_S: dict[str, tuple[float, ...]] = {
    "ttft": (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
    + (5.0, 7.5, 10.0, 20.0, 40.0, 80.0),
    "itl": _TOKEN_GAPS,
    "tpot": _TOKEN_GAPS,
    "e2e": (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
    + (90.0, 120.0, 180.0, 300.0, 600.0),
}
_HISTOGRAMS = {"ttft": "ttft_ms", "itl": "itl_ms", "tpot": "tpot_ms", "e2e": "e2e_ms"}
_HELP = {
    "ttft": "Time to first token (streaming), seconds",
    "itl": "Inter-token latency: gaps between token events, seconds",
    "tpot": "Time per output token after the first, per request, seconds",
    "e2e": "Request start to last byte (streaming), seconds",
}
METRIC_NAMES = frozenset(
    [f"{PREFIX}_{k}_seconds" for k in _HISTOGRAMS]
    + [f"{PREFIX}_{n}" for n in ("output_tokens_total", "requests_total", "failures_total")]
    + [f"{PREFIX}_users", f"{PREFIX}_loop_lag_seconds"]
)


class AggregateCollector(Collector):
    """Yields the aggregate's figures at each scrape; ``users`` and ``loop_lag_s`` optional."""

    def __init__(
        self,
        aggregate: Callable[[], Aggregate],
        users: Callable[[], float] | None = None,
        loop_lag_s: Callable[[], float | None] | None = None,
    ) -> None:
        self._aggregate = aggregate
        self._users = users
        self._loop_lag_s = loop_lag_s

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration; never calls the aggregate early

    def collect(self) -> Iterator[Metric]:
        agg = self._aggregate()
        for short, key in _HISTOGRAMS.items():
            h = agg.hist.get(key) or Histogram()
            bounds = BUCKETS_S[short]
            below = h.ranks_below(b * 1000.0 for b in bounds)
            buckets = [(repr(b), float(n)) for b, n in zip(bounds, below, strict=True)]
            buckets.append(("+Inf", float(h.count)))
            yield HistogramMetricFamily(
                f"{PREFIX}_{short}_seconds",
                _HELP[short],
                buckets=buckets,
                sum_value=h.total / 1000.0,
            )
        yield CounterMetricFamily(
            f"{PREFIX}_output_tokens", "Output tokens of successful requests",
            value=agg.sums.get("output_tokens", 0.0),
        )  # fmt: skip
        yield CounterMetricFamily(
            f"{PREFIX}_requests", "Successful requests", value=float(agg.requests)
        )
        failures = CounterMetricFamily(
            f"{PREFIX}_failures", "Failed requests by kind", labels=["kind"]
        )
        for kind, n in sorted(agg.failures.items()):
            failures.add_metric([kind], float(n))
        yield failures
        if self._users is not None:
            yield GaugeMetricFamily(f"{PREFIX}_users", "Running users", value=self._users())
        if self._loop_lag_s is not None:
            lag = self._loop_lag_s()
            if lag is not None:
                yield GaugeMetricFamily(
                    f"{PREFIX}_loop_lag_seconds",
                    "Client gevent loop lag (timing uncertainty), seconds",
                    value=lag,
                )


def make_registry(
    aggregate: Callable[[], Aggregate],
    users: Callable[[], float] | None = None,
    loop_lag_s: Callable[[], float | None] | None = None,
) -> CollectorRegistry:
    """A registry of its own holding one :class:`AggregateCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AggregateCollector(aggregate, users, loop_lag_s))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (``Content-Type: text/plain; version=0.0.4``)."""
    return generate_latest(registry)
