"""The summary: the seed's lines in the seed's own format, the full table, and the JSON.

Reads only an :class:`~llm_users.measure.aggregate.Aggregate` snapshot and a few run facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..measure.aggregate import Aggregate
from ..measure.figures import FIGURES, by_key, fmt_grouped, fmt_seed, of_kind
from ..measure.histogram import PERCENTILES
from ..measure.per_request import RequestResult
from .capacity import search_lines, steady_lines
from .cost import cost_lines, gpu_lines
from .fidelity import error_bound, merged_first
from .traffic import cancel_lines, rate_lines

__all__ = [
    "NOT_REPORTED",
    "RunInfo",
    "prefix_cache",
    "request_line",
    "seed_lines",
    "summary_dict",
    "table_lines",
]

DASHES = "-" * 50
NOT_REPORTED = "not reported by the server"


@dataclass
class RunInfo:
    """Facts about the run that the aggregate does not hold."""

    mode: str  # "streaming" | "non-streaming"
    concurrency: int
    endpoint: str = "chat"
    model: str = ""
    host: str = ""
    max_tokens: int | None = None
    tokenizer: str = ""
    prefix_workload: bool = False  # shared-prefix or trace run: report the cache even if unseen
    extra: dict[str, Any] = field(default_factory=dict)  # loop lag, workers, ...


def request_line(r: RequestResult) -> str:
    """One finished request in the seed's per-request format."""
    if r.cancelled:
        return f"Request cancelled after {fmt_seed(r.e2e_ms)} ms"
    if not r.ok:
        return f"Request failed ({r.failure}): {r.message}"
    if r.stream:
        return (
            f"First token latency: {fmt_seed(r.ttft_ms)} ms, Follow tokens: {r.follow_tokens}, "
            f"Follow latency: {fmt_seed(r.follow_latency_ms)} ms, "
            f"Follow Speed: {fmt_seed(r.speed)} tokens/s"
        )
    return (
        f"Latency: {fmt_seed(r.e2e_ms)} ms, Total tokens: {r.total_tokens}, "
        f"Speed: {fmt_seed(r.speed)} tokens/s"
    )


def _seed_figures(agg: Aggregate, info: RunInfo) -> dict[str, float | None]:
    if info.mode == "streaming":
        speed = agg.mean("follow_speed", "stream_ok")
        return {
            "average_first_token_latency_ms": agg.mean("ttft_ms", "stream_ok"),
            "average_follow_latency_ms": agg.mean("follow_latency_ms", "stream_ok"),
            "average_follow_tokens": agg.mean("follow_tokens", "stream_ok"),
            "follow_throughput_tokens_per_s": speed * info.concurrency
            if speed is not None
            else None,
        }
    speed = agg.mean("speed", "nonstream_ok")
    return {
        "average_latency_ms": agg.mean("latency_ms", "nonstream_ok"),
        "average_tokens": agg.mean("total_tokens", "nonstream_ok"),
        "throughput_tokens_per_s": speed * info.concurrency if speed is not None else None,
    }


def seed_lines(agg: Aggregate, info: RunInfo) -> list[str]:
    """The seed's summary, word for word: 50 dashes, then its averages."""
    f = _seed_figures(agg, info)
    if info.mode == "streaming":
        return [
            DASHES,
            f"Average First token latency: {fmt_seed(f['average_first_token_latency_ms'])} ms",
            f"Average follow latency: {fmt_seed(f['average_follow_latency_ms'])} ms",
            f"Average follow tokens: {fmt_seed(f['average_follow_tokens'])}",
            f"Follow throughput: {fmt_seed(f['follow_throughput_tokens_per_s'])} tokens/s",
        ]
    return [
        DASHES,
        f"Average Latency: {fmt_seed(f['average_latency_ms'])} ms",
        f"Average Tokens: {fmt_seed(f['average_tokens'])}",
        f"Throughput: {fmt_seed(f['throughput_tokens_per_s'])} tokens/s",
    ]


def _rate(n: float, seconds: float) -> float | None:
    return n / seconds if seconds > 0 else None


def _dist(agg: Aggregate, name: str) -> dict[str, float | int | None]:
    s = agg.hist[name].summary()
    return {k: s[k] for k in ("count", "mean", *(f"p{p}" for p in PERCENTILES), "max")}


def summary_dict(agg: Aggregate, info: RunInfo) -> dict[str, Any]:
    """The JSON summary (keys documented in the README)."""
    duration = agg.duration_s
    sent = agg.requests + agg.failed + agg.counts["cancelled"]
    out: dict[str, Any] = {
        "mode": info.mode,
        "endpoint": info.endpoint,
        "model": info.model,
        "host": info.host,
        "concurrency": info.concurrency,
        "requests": agg.requests,
        "failures": agg.failed,
        "failures_by_kind": dict(sorted(agg.failures.items())),
        "failure_examples": dict(sorted(agg.failure_examples.items())),
        # sent again once on a fresh connection: the reused one was closed unanswered
        "retries": agg.counts["retries"],
        "cancelled": agg.counts["cancelled"],  # hung up on purpose: in no latency figure
        "cancelled_rate": agg.counts["cancelled"] / sent if sent else None,
        "duration_s": duration,
        "output_tokens": int(agg.sums["output_tokens"]),
        "output_tokens_per_s": _rate(agg.sums["output_tokens"], duration),
        "requests_per_s": _rate(agg.requests, duration),
    }
    out.update(_seed_figures(agg, info))
    rates = [f for f in FIGURES if f.per_s and f.endpoint == info.endpoint]
    out.update({f.key: _rate(agg.sums[f.per_s], duration) for f in rates})
    for f in of_kind("distribution", info.mode):
        if not f.sparse:
            out[f.key] = _dist(agg, f.key)
    out["follow_tokens_source" if info.mode == "streaming" else "tokens_source"] = dict(agg.sources)
    c = agg.counts
    out["token_count_check"] = {
        "compared": c["token_compared"],
        "mean_abs_diff": agg.sums["token_diff_abs"] / c["token_compared"]
        if c["token_compared"]
        else None,
        "max_abs_diff": agg.token_diff_max if c["token_compared"] else None,
    }
    out["short_outputs"] = {"requests": c["short_outputs"], "of": c["with_max_tokens"]}
    if info.mode == "streaming":
        out["merged_first_token"] = merged_first(agg)
    for f in FIGURES:
        if f.sparse and f.kind == "distribution" and agg.hist[f.key].count:
            out[f.key] = _dist(agg, f.key)
    if info.prefix_workload or c["cache_reported"]:
        out["prefix_cache"] = prefix_cache(agg)
        rate = out["prefix_cache"]["hit_rate_percent"]
        out["prefix_cache_hit_rate"] = NOT_REPORTED if rate is None else rate
    tpe = agg.hist["tokens_per_event"]
    if tpe.count:
        out["tokens_per_event"] = {k: v for k, v in tpe.summary().items() if k != "count"}
        out["tokens_per_event"]["requests"] = tpe.count
    if c["slo_checked"]:
        out["goodput"] = {
            "requests_meeting_slo": c["slo_met"],
            "of": c["slo_checked"],
            "percent": 100.0 * c["slo_met"] / c["slo_checked"],
            "requests_per_s": _rate(c["slo_met"], duration),
        }
    out.update({k: v for k, v in info.extra.items() if k != "notes" or v})
    out["error_bound_ms"] = error_bound(agg, info.extra, info.mode)
    return out


def prefix_cache(agg: Aggregate) -> dict[str, Any]:
    """Prefix-cache figures; the hit rate is None when no server response reported it."""
    c, s = agg.counts, agg.sums
    reported = c["cache_reported"]
    prompt = int(s["cache_prompt_tokens"])
    return {
        "hit_rate_percent": 100.0 * s["cached_tokens"] / prompt if reported and prompt else None,
        "cached_tokens": int(s["cached_tokens"]) if reported else None,
        "prompt_tokens": prompt if reported else None,
        "requests_reported": reported,
        "of": agg.requests,
        "mostly_cached_requests": c["mostly_cached"] if reported else None,
        "reported_by_server": bool(reported),
    }


def _cache_line(d: dict[str, Any]) -> str | None:
    pc = d.get("prefix_cache")
    if not pc:
        return None
    if pc["hit_rate_percent"] is None:
        return f"  prefix cache hit rate: {NOT_REPORTED} (usage.prompt_tokens_details)"
    partial = "" if pc["requests_reported"] == pc["of"] else f" (of {pc['of']})"
    return (
        f"  prefix cache hit rate: {pc['hit_rate_percent']:.1f} % ({pc['cached_tokens']:,} of "
        f"{pc['prompt_tokens']:,} prompt tokens cached; {pc['mostly_cached_requests']} of "
        f"{pc['requests_reported']} requests{partial} >= 50 % cached)"
    )


def _figure(d: dict[str, Any], key: str) -> str:
    """A figure of the summary at its registered digits."""
    return by_key(key).fmt_grouped(d[key])


def _turn_lines(d: dict[str, Any]) -> list[str]:
    """Conversations: completed, truncated, and what each turn index cost."""
    conv = d.get("conversations")
    if not conv:
        return []
    lines = [f"  conversations: {conv['completed']} completed"]
    if conv["truncated_requests"]:
        lines[0] += (
            f", {conv['truncated_requests']} requests sent with their oldest turns left out "
            f"(--max-context-tokens {conv['max_context_tokens']})"
        )
    rows = d.get("turns") or []
    if rows:
        lines.append(
            f"    {'turn':>6}{'requests':>10}{'fail':>6}{'prompt tok':>12}"
            f"{'TTFT mean':>11}{'TTFT p50':>10}{'TTFT p99':>10}{'E2E mean':>11}{'E2E p99':>10}"
        )
    for r in rows:
        t, e = r["ttft_ms"], r["e2e_ms"]
        lines.append(
            f"    {r['turn']:>6}{r['requests']:>10}{r['failures']:>6}"
            f"{fmt_grouped(r['prompt_tokens_mean'], 1):>12}"
            f"{fmt_grouped(t['mean']):>11}{fmt_grouped(t['p50']):>10}{fmt_grouped(t['p99']):>10}"
            f"{fmt_grouped(e['mean']):>11}{fmt_grouped(e['p99']):>10}"
        )
    return lines


def table_lines(agg: Aggregate, info: RunInfo) -> list[str]:
    """The fuller figures, for people: throughput, failures by kind, exact percentiles."""
    d = summary_dict(agg, info)
    lines = [
        "",
        f"LLM summary ({info.mode}, {info.endpoint}, model {info.model or '-'}, "
        f"{info.concurrency} users)",
        f"  requests ok {_figure(d, 'requests')}   failed {_figure(d, 'failures')}   "
        f"duration {_figure(d, 'duration_s')} s",
        f"  output tokens {_figure(d, 'output_tokens')}   "
        f"output tokens/s {_figure(d, 'output_tokens_per_s')}   "
        f"requests/s {_figure(d, 'requests_per_s')}",
    ]
    lines += rate_lines(d)  # embeddings, rerank
    warm = d.get("warmup")
    if warm:
        lines.append(
            f"  warm-up: {warm['requests']} requests ({warm['failures']} failed) "
            "sent, kept out of every figure"
        )
    src = d.get("follow_tokens_source") or d.get("tokens_source") or {}
    if src:
        what = "follow tokens" if info.mode == "streaming" else "tokens"
        counted = ", ".join(f"{k} ({v})" for k, v in sorted(src.items()))
        lines.append(f"  {what} counted by: {counted}")
    chk = d["token_count_check"]
    if chk["compared"]:
        lines.append(
            f"  tokenizer vs usage: mean |diff| {fmt_grouped(chk['mean_abs_diff'])} tokens, "
            f"max {chk['max_abs_diff']} over {chk['compared']} requests"
        )
    so = d["short_outputs"]
    if so["requests"]:
        lines.append(f"  {so['requests']} of {so['of']} responses were shorter than max_tokens")
    cache = _cache_line(d)
    if cache:
        lines.append(cache)
    dists = [f for f in of_kind("distribution", info.mode) if not f.sparse or f.key in d]
    ttfc, ttft = agg.hist["ttfc_ms"], agg.hist["ttft_ms"]
    if ttfc.count == ttft.count and ttfc.total == ttft.total:
        dists = [f for f in dists if f.key != "ttfc_ms"]  # no reasoning: the same figure
    header = (
        f"  {'ms':<24}{'count':>9}{'mean':>11}"
        + "".join(f"{'p' + str(p):>11}" for p in PERCENTILES)
        + f"{'max':>11}"
    )
    lines.append(header)
    for f in dists:
        s = d.get(f.key) or _dist(agg, f.key)
        if not s["count"]:
            continue
        row = f"  {f.title:<24}{s['count']:>9}{fmt_grouped(s['mean'], f.digits):>11}"
        row += "".join(f"{fmt_grouped(s[f'p{p}'], f.digits):>11}" for p in PERCENTILES)
        lines.append(row + f"{fmt_grouped(s['max'], f.digits):>11}")
    tpe = d.get("tokens_per_event")
    if tpe:
        lines.append(
            f"  tokens per event: mean {fmt_grouped(tpe['mean'])}, p50 {fmt_grouped(tpe['p50'])}, "
            f"max {fmt_grouped(tpe['max'])} (1.00 = one token per event)"
        )
    gp = d.get("goodput")
    if gp:
        slo = ", ".join(f"{k} <= {v:g}" for k, v in (d.get("slo") or {}).items())
        target = d.get("slo_target")
        verdict = (
            ""
            if not target
            else (
                " (target met)" if gp["percent"] >= target else f" (BELOW the {target:g} % target)"
            )
        )
        lines.append(
            f"  goodput: {gp['requests_meeting_slo']} of {gp['of']} requests "
            f"({gp['percent']:.1f} %) met {slo}{verdict}"
        )
    if agg.failures:
        lines.append("  failures by kind:")
        for kind, n in sorted(agg.failures.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {kind:<22}{n:>7}  e.g. {agg.failure_examples.get(kind, '')[:150]}")
    lines += cancel_lines(d)
    if agg.counts["retries"]:
        lines.append(
            f"  retries: {agg.counts['retries']} requests sent again on a fresh connection "
            "(the server closed a reused one without answering)"
        )
    ts = info.extra.get("timestamps")
    if ts:
        line = f"  timestamps: {ts['source']}"
        if ts.get("offset_uncertainty_us") is not None:
            line += f" (clock offset uncertainty {ts['offset_uncertainty_us']:.2f} us)"
        if ts.get("why_user"):
            line += f" ({ts['why_user']})"
        if ts.get("clock_steps"):
            line += f"; the wall clock stepped: {ts['clock_steps']} requests timed with user stamps"
        lines.append(line)
    merged = d.get("merged_first_token")
    if merged and merged["requests"]:
        line = (
            f"  first token read with later tokens: {merged['requests']} of {merged['of']} "
            "streams (their TTFT stamp is that read's)"
        )
        b = merged["bound_ms"]
        if b:
            line += (
                f"; late by at most {fmt_grouped(b['p99'])} ms p99, {fmt_grouped(b['max'])} ms max"
            )
        lines.append(line)
    bound = d.get("error_bound_ms")
    if bound:
        figures = [(k, n) for k, n in (("ttft_ms", "TTFT"), ("itl_ms", "ITL"),
                   ("e2e_ms", "E2E"), ("latency_ms", "latency")) if k in bound]  # fmt: skip
        parts = ", ".join(f"{n} <= {fmt_grouped(bound[k], 3)} ms" for k, n in figures)
        lines.append(f"  client timing error (p99): {parts} ({bound['reads']} stamps)")
    lag = info.extra.get("client_loop_lag_ms")
    if lag:
        lines.append(
            f"  client loop lag (timing uncertainty): p50 {fmt_grouped(lag.get('p50'))} ms, "
            f"p99 {fmt_grouped(lag.get('p99'))} ms, max {fmt_grouped(lag.get('max'))} ms"
        )
    for note in info.extra.get("notes", []):
        lines.append(f"  note: {note}")
    lines.extend(_turn_lines(d))
    sweep = d.get("sweep")
    if sweep:
        key = "users" if "users" in sweep[0] else "rate"
        lines.append(f"  sweep ({key}):")
        lines.append(
            f"    {key:>8}{'requests':>10}{'fail':>6}{'out tok/s':>12}{'req/s':>9}"
            f"{'TTFT p50':>10}{'TTFT p99':>10}{'TPOT p50':>10}{'E2E p99':>10}"
        )
        for r in sweep:
            lines.append(
                f"    {r[key]:>8g}{r['requests']:>10}{r['failures']:>6}"
                f"{fmt_grouped(r['output_tokens_per_s'], 1):>12}"
                f"{fmt_grouped(r['requests_per_s']):>9}"
                f"{fmt_grouped(r['ttft_p50_ms']):>10}{fmt_grouped(r['ttft_p99_ms']):>10}"
                f"{fmt_grouped(r['tpot_p50_ms']):>10}{fmt_grouped(r['e2e_p99_ms']):>10}"
            )
    lines.extend(steady_lines(d.get("steady")))
    lines.extend(search_lines(d.get("search")))
    lines.extend(gpu_lines(d.get("gpu")))
    lines.extend(cost_lines(d.get("cost")))
    return lines
