"""Small /metrics pages in each server's real family names.

Sources: docs/guides/server-metrics.md."""

from __future__ import annotations


def vllm(
    running: float = 0,
    waiting: float = 0,
    kv: float = 0.0,
    ttft: tuple[float, float, float, float] = (0, 0, 0, 0),
    ttft_sum: float = 0.0,
    queries: float = 0,
    hits: float = 0,
    engines: int = 1,
    old_names: bool = False,
) -> str:
    """vLLM: ``ttft`` = cumulative counts for le 0.1, 0.2, 0.4, +Inf (per engine)."""
    kv_name = "vllm:gpu_cache_usage_perc" if old_names else "vllm:kv_cache_usage_perc"
    q_name = "vllm:gpu_prefix_cache_queries" if old_names else "vllm:prefix_cache_queries"
    h_name = "vllm:gpu_prefix_cache_hits" if old_names else "vllm:prefix_cache_hits"
    itl_name = "vllm:time_per_output_token_seconds" if old_names else (
        "vllm:inter_token_latency_seconds")  # fmt: skip
    lines = [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
        "# TYPE vllm:num_requests_waiting gauge",
        f"# TYPE {kv_name} gauge",
        f"# TYPE {q_name}_total counter",
        f"# TYPE {h_name}_total counter",
        "# TYPE vllm:time_to_first_token_seconds histogram",
        f"# TYPE {itl_name} histogram",
        "# TYPE vllm:lora_requests_info gauge",
    ]
    body = []
    for e in range(engines):
        lab = f'engine="{e}",model_name="m"'
        body += [
            f"vllm:num_requests_running{{{lab}}} {running}",
            f"vllm:num_requests_waiting{{{lab}}} {waiting}",
            f"{kv_name}{{{lab}}} {kv}",
            f"{q_name}_total{{{lab}}} {queries}",
            f"{h_name}_total{{{lab}}} {hits}",
            f'{itl_name}_bucket{{{lab},le="0.01"}} 0.0',
            f'{itl_name}_bucket{{{lab},le="+Inf"}} 0.0',
            f"{itl_name}_sum{{{lab}}} 0.0",
            f"{itl_name}_count{{{lab}}} 0.0",
        ]
        for le, c in zip(("0.1", "0.2", "0.4", "+Inf"), ttft, strict=True):
            body.append(f'vllm:time_to_first_token_seconds_bucket{{{lab},le="{le}"}} {c}')
        body += [
            f"vllm:time_to_first_token_seconds_sum{{{lab}}} {ttft_sum}",
            f"vllm:time_to_first_token_seconds_count{{{lab}}} {ttft[-1]}",
        ]
    body.append('vllm:lora_requests_info{max_lora="0"} 1.0')
    # HELP/TYPE lines may come anywhere before a family's samples: group them per family
    out: list[str] = []
    for t in lines:
        name = t.split()[2]
        out.append(t)
        if not t.startswith("# TYPE"):
            continue
        base = name[: -len("_total")] if name.endswith("_total") else name
        out += [b for b in body if b.split("{")[0].split(" ")[0] in (
            name, base + "_bucket", base + "_sum", base + "_count", base + "_total")]  # fmt: skip
    return "\n".join(out) + "\n"


SGLANG = """\
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="m"} 3.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="m"} 1.0
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="m"} 0.25
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="m"} 0.5
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 1.0
sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 2.0
sglang:time_to_first_token_seconds_sum{model_name="m"} 0.3
sglang:time_to_first_token_seconds_count{model_name="m"} 2.0
# TYPE sglang:inter_token_latency_seconds histogram
sglang:inter_token_latency_seconds_bucket{le="0.01",model_name="m"} 0.0
sglang:inter_token_latency_seconds_bucket{le="+Inf",model_name="m"} 0.0
sglang:inter_token_latency_seconds_sum{model_name="m"} 0.0
sglang:inter_token_latency_seconds_count{model_name="m"} 0.0
# TYPE sglang:e2e_request_latency_seconds histogram
sglang:e2e_request_latency_seconds_bucket{le="1.0",model_name="m"} 0.0
sglang:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} 0.0
sglang:e2e_request_latency_seconds_sum{model_name="m"} 0.0
sglang:e2e_request_latency_seconds_count{model_name="m"} 0.0
# TYPE sglang:queue_time_seconds histogram
sglang:queue_time_seconds_bucket{le="0.1",model_name="m"} 0.0
sglang:queue_time_seconds_bucket{le="+Inf",model_name="m"} 0.0
sglang:queue_time_seconds_sum{model_name="m"} 0.0
sglang:queue_time_seconds_count{model_name="m"} 0.0
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="m"} 8.0
"""

# TGI's router (the Rust `metrics` crate's Prometheus exporter): no TTFT histogram.
TGI = """\
# TYPE tgi_queue_size gauge
tgi_queue_size 4
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 8
# TYPE tgi_request_queue_duration histogram
tgi_request_queue_duration_bucket{le="0.1"} 1
tgi_request_queue_duration_bucket{le="+Inf"} 1
tgi_request_queue_duration_sum 0.05
tgi_request_queue_duration_count 1
# TYPE tgi_request_duration histogram
tgi_request_duration_bucket{le="1"} 0
tgi_request_duration_bucket{le="+Inf"} 1
tgi_request_duration_sum 2.0
tgi_request_duration_count 1
# TYPE tgi_request_mean_time_per_token_duration histogram
tgi_request_mean_time_per_token_duration_bucket{le="0.05"} 1
tgi_request_mean_time_per_token_duration_bucket{le="+Inf"} 1
tgi_request_mean_time_per_token_duration_sum 0.02
tgi_request_mean_time_per_token_duration_count 1
# TYPE tgi_request_success counter
tgi_request_success 1
"""

# llama.cpp's server: unlabelled gauges and counters, no latency histograms.
LLAMACPP = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 120
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 40
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.125
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 5
"""


# vLLM histograms this project does not read (vllm/v1/metrics/loggers.py): most of a real page
_UNREAD = (
    "vllm:request_prompt_tokens",
    "vllm:request_generation_tokens",
    "vllm:iteration_tokens_total",
    "vllm:request_max_num_generation_tokens",
    "vllm:request_params_n",
    "vllm:request_params_max_tokens",
    "vllm:time_per_prefill_token_request_seconds",
    "vllm:request_inference_time_seconds",
    "vllm:request_prefill_time_seconds",
    "vllm:request_decode_time_seconds",
)
_READ = ("vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds")


def _histogram(name: str, lab: str, n_buckets: int = 20) -> list[str]:
    les = [f"{0.001 * 2**i:g}" for i in range(n_buckets)] + ["+Inf"]
    out = [f"# HELP {name} Histogram.", f"# TYPE {name} histogram"]
    out += [f'{name}_bucket{{{lab},le="{le}"}} {i}.0' for i, le in enumerate(les)]
    return out + [f"{name}_sum{{{lab}}} 1.5", f"{name}_count{{{lab}}} {n_buckets}.0"]


def big_vllm_page(target_bytes: int = 200_000) -> str:
    """A vLLM-like page of about ``target_bytes``: its families for many label sets (engines)."""

    def page(engines: int) -> str:
        text = vllm(running=3, waiting=1, kv=0.5, ttft=(1, 2, 3, 4), ttft_sum=0.5, engines=engines)
        for name in _UNREAD + _READ:
            lines = [
                line
                for e in range(engines)
                for line in _histogram(name, f'engine="{e}",model_name="m"')
                if e == 0 or not line.startswith("#")
            ]
            text += "\n".join(lines) + "\n"
        return text

    per_engine = len(page(2)) - len(page(1))
    return page(max(1, target_bytes // per_engine))
