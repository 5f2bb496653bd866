"""The simulator's ``/metrics`` page in vLLM's names, from its own true values.

Histogram bounds are vLLM's (``vllm/v1/metrics/loggers.py``); every series is labelled
``model_name`` and ``engine`` as vLLM's are.
"""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
    240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LABELS = ("model_name", "engine")


class Metrics:
    """One registry per simulator state (a reset makes a fresh one)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.running = Gauge(
            "vllm:num_requests_running", "Requests generating.", LABELS, registry=r
        )
        self.waiting = Gauge("vllm:num_requests_waiting", "Requests queued.", LABELS, registry=r)
        self.kv_usage = Gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent.", LABELS, registry=r
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token in seconds.",
            LABELS,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds",
            "Inter-token latency in seconds.",
            LABELS,
            buckets=ITL_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end request latency in seconds.",
            LABELS,
            buckets=REQUEST_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue = Histogram(
            "vllm:request_queue_time_seconds",
            "Time spent in WAITING phase for request.",
            LABELS,
            buckets=REQUEST_LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", LABELS, registry=r
        )
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", LABELS, registry=r
        )
        self.success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            (*LABELS, "finished_reason"),
            registry=r,
        )
        self.cache_queries = Counter(
            "vllm:prefix_cache_queries", "Prefix cache queries, in tokens.", LABELS, registry=r
        )
        self.cache_hits = Counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in tokens.", LABELS, registry=r
        )
        self._model = ""

    def bind(self, model: str) -> None:
        """Label every series with ``model`` (the served model's name) from now on."""
        if model == self._model:
            return
        self._model = model
        labels = (model, "0")
        self._running = self.running.labels(*labels)
        self._waiting = self.waiting.labels(*labels)
        self._kv_usage = self.kv_usage.labels(*labels)
        self._ttft = self.ttft.labels(*labels)
        self._itl = self.itl.labels(*labels)
        self._e2e = self.e2e.labels(*labels)
        self._queue = self.queue.labels(*labels)
        self._prompt_tokens = self.prompt_tokens.labels(*labels)
        self._generation_tokens = self.generation_tokens.labels(*labels)
        self._cache_queries = self.cache_queries.labels(*labels)
        self._cache_hits = self.cache_hits.labels(*labels)
        self._success = {
            reason: self.success.labels(*labels, reason) for reason in ("stop", "length")
        }

    def observe_ttft(self, seconds: float) -> None:
        self._ttft.observe(seconds)

    def observe_itl(self, seconds: float) -> None:
        self._itl.observe(seconds)

    def started(self, prompt_tokens: int, queued: float) -> None:
        self._prompt_tokens.inc(prompt_tokens)
        self._queue.observe(queued)

    def generated(self, tokens: int) -> None:
        self._generation_tokens.inc(tokens)

    def cache_lookup(self, queried: int, hit: int) -> None:
        self._cache_queries.inc(queried)
        self._cache_hits.inc(hit)

    def succeeded(self, finish_reason: str, e2e: float) -> None:
        self._success[finish_reason].inc()
        self._e2e.observe(e2e)

    def page(self, running: int, waiting: int, kv_usage: float) -> bytes:
        """The Prometheus text page, gauges set to the values of this instant."""
        self._running.set(running)
        self._waiting.set(waiting)
        self._kv_usage.set(kv_usage)
        return generate_latest(self.registry)


@functools.lru_cache(maxsize=2)
def _padding(count: int) -> bytes:
    """The padding lines, built once (~2 s in Python for 50 MB): later pages come at once."""
    return b"".join(b'sim_padding{i="%07d"} 1\n' % i for i in range(count))


def huge_page(base: bytes, size: int) -> bytes:
    """``base`` followed by one gauge with enough labelled samples to reach ``size`` bytes."""
    head = b"# HELP sim_padding Padding series.\n# TYPE sim_padding gauge\n"
    line_len = len(b'sim_padding{i="0000000"} 1\n')
    count = max(0, (size - len(base) - len(head)) // line_len)
    return base + head + _padding(count)


GARBAGE = b"<html><body>this is not a metrics page {{{ 42 }}}</body></html>\n"
