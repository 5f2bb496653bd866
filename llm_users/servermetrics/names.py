"""Known /metrics families of LLM servers, mapped to common names (sources in the README)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAMILIES", "GPU_FAMILIES", "KNOWN_KEYS", "Known", "family_key", "lookup"]


@dataclass(frozen=True)
class Known:
    """One common figure and the server families that report it, preferred name first."""

    common: str
    kind: str  # "gauge" | "counter" | "histogram"
    names: tuple[str, ...]
    unit: str = ""  # "s" for histograms in seconds, "ratio" for 0..1 gauges
    combine: str = "sum"  # how label sets (engines, models) add up: "sum" or "mean"


# Names as the servers expose them (counters with their `_total`). Older names come after the
# current ones: a server reporting both (vLLM 0.9-0.10 keeps the deprecated ones) uses the new.
FAMILIES: tuple[Known, ...] = (
    Known(
        "running",
        "gauge",
        (
            "vllm:num_requests_running",
            "sglang:num_running_reqs",
            "tgi_batch_current_size",
            "llamacpp:requests_processing",
        ),
    ),
    Known(
        "waiting",
        "gauge",
        (
            "vllm:num_requests_waiting",
            "sglang:num_queue_reqs",
            "tgi_queue_size",
            "llamacpp:requests_deferred",
        ),
    ),
    Known(
        "kv_cache_usage",
        "gauge",
        (
            "vllm:kv_cache_usage_perc",
            "vllm:gpu_cache_usage_perc",
            "sglang:token_usage",
            "llamacpp:kv_cache_usage_ratio",
        ),
        unit="ratio",
        combine="mean",
    ),
    Known(
        "ttft",
        "histogram",
        ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"),
        unit="s",
    ),
    # vLLM's per-token gap histogram: `inter_token_latency_seconds` since 0.11, before that it
    # was recorded under `time_per_output_token_seconds`.
    Known(
        "itl",
        "histogram",
        (
            "vllm:inter_token_latency_seconds",
            "sglang:inter_token_latency_seconds",
            "vllm:time_per_output_token_seconds",
        ),
        unit="s",
    ),
    Known(
        "tpot",
        "histogram",
        ("vllm:request_time_per_output_token_seconds", "tgi_request_mean_time_per_token_duration"),
        unit="s",
    ),
    Known(
        "queue_time",
        "histogram",
        (
            "vllm:request_queue_time_seconds",
            "sglang:queue_time_seconds",
            "tgi_request_queue_duration",
        ),
        unit="s",
    ),
    Known(
        "e2e",
        "histogram",
        (
            "vllm:e2e_request_latency_seconds",
            "sglang:e2e_request_latency_seconds",
            "tgi_request_duration",
        ),
        unit="s",
    ),
    Known(
        "prefix_cache_queries",
        "counter",
        ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    ),
    Known(
        "prefix_cache_hits",
        "counter",
        ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    ),
    Known(
        "prefix_cache_hit_rate", "gauge", ("sglang:cache_hit_rate",), unit="ratio", combine="mean"
    ),
    Known(
        "generation_tokens",
        "counter",
        (
            "vllm:generation_tokens_total",
            "sglang:generation_tokens_total",
            "llamacpp:tokens_predicted_total",
        ),
    ),
    Known(
        "prompt_tokens",
        "counter",
        (
            "vllm:prompt_tokens_total",
            "sglang:prompt_tokens_total",
            "llamacpp:prompt_tokens_total",
        ),
    ),
    Known("requests_finished", "counter", ("vllm:request_success_total", "tgi_request_success")),
)


# NVIDIA's DCGM exporter (port 9400, one label set per GPU): power and framebuffer add up over
# the GPUs, utilisation is their mean; the energy counter (mJ since the driver loaded) adds up.
GPU_FAMILIES: tuple[Known, ...] = (
    Known("power_w", "gauge", ("DCGM_FI_DEV_POWER_USAGE",)),
    Known("utilization_percent", "gauge", ("DCGM_FI_DEV_GPU_UTIL",), combine="mean"),
    Known("memory_used_mib", "gauge", ("DCGM_FI_DEV_FB_USED",)),
    Known("energy_mj", "counter", ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",)),
)


def family_key(name: str) -> str:
    """The family name prometheus_client's parser gives: counters lose their `_total`."""
    return name[: -len("_total")] if name.endswith("_total") else name


def lookup(
    present: set[str], families: tuple[Known, ...] = FAMILIES
) -> dict[str, tuple[Known, str]]:
    """common name -> (its entry, the first of its families present) for a parsed scrape.

    ``present`` holds parser family names (see :func:`family_key`).
    """
    out: dict[str, tuple[Known, str]] = {}
    for k in families:
        for name in k.names:
            if family_key(name) in present:
                out[k.common] = (k, family_key(name))
                break
    return out


KNOWN_KEYS = frozenset(family_key(n) for k in FAMILIES for n in k.names)
