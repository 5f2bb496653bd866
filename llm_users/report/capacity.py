"""Capacity in the summary: the search (one row per probe, then the answer) and the steady
window (the figures while the load was at its target)."""

from __future__ import annotations

from typing import Any

from ..measure.aggregate import Aggregate
from ..options.settings import Settings

__all__ = ["STEADY_DEFINITION", "search_lines", "steady_dict", "steady_lines", "sweep_rows"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _bound(p: dict[str, Any] | None, unit: str) -> str:
    if p is None:
        return "none"
    lo, hi = p["interval_percent"]
    att = p["attainment_percent"]
    text = f"{p['load']:g} {unit} ({_pct(att)} % met, 95 % interval {lo:.1f}-{hi:.1f} %)"
    return text + (" [straddles the target]" if p["straddles_target"] else "")


def search_lines(sr: dict[str, Any] | None) -> list[str]:
    """The capacity search: one row per probe, then the answer."""
    if not sr:
        return []
    unit = "users" if sr["of"] == "users" else "req/s"
    slo = ", ".join(f"{k} <= {v:g}" for k, v in sr["slo"].items())
    lines = [
        f"  capacity search ({sr['of']}; {slo} for {sr['slo_target_percent']:g} % of requests, "
        f"{sr['confidence']:.0%} Wilson intervals):",
        f"    {'load':>8}{'verdict':>9}{'met %':>8}{'interval %':>14}{'checked':>9}"
        f"{'warm s':>8}{'meas s':>8}{'TTFT p99':>10}{'goodput/s':>11}  stopped",
    ]
    for p in sr["probes"]:
        lo, hi = p["interval_percent"]
        flag = "*" if p["straddles_target"] else ""
        lines.append(
            f"    {p['load']:>8g}{p['verdict'] + flag:>9}{_pct(p['attainment_percent']):>8}"
            f"{f'{lo:.1f}-{hi:.1f}':>14}{p['requests_checked']:>9}{p['warmup_s']:>8.1f}"
            f"{p['measured_s']:>8.1f}{_ms(p['ttft_p99_ms']):>10}"
            f"{_ms(p['goodput_requests_per_s']):>11}  {p['stopped']}"
        )
    lines.append(f"    highest load meeting the SLO: {_bound(sr['highest_passing'], unit)}")
    lines.append(f"    lowest load missing it: {_bound(sr['lowest_failing'], unit)}")
    if sr["goodput_requests_per_s"] is not None:
        lines.append(f"    goodput there: {sr['goodput_requests_per_s']:.2f} requests/s")
    if sr.get("time_ratio"):
        lines.append(
            f"    search time {sr['search_s']:.1f} s for {sr['probes_needed_s']:.1f} s of "
            f"probes (warm-up + measured): {sr['time_ratio']:.2f}x; fixed steps of "
            f"--search-probe-time would take {sr['fixed_steps_s']:.0f} s"
        )
    for key in ("warning", "note"):
        if sr.get(key):
            lines.append(f"    {key}: {sr[key]}")
    return lines


STEADY_DEFINITION = (
    "requests that started once every user was running (Locust's spawning complete) and "
    "ended before the first user stopped (its --requests-per-user sent, or the test's end)"
)


def steady_dict(
    steady: Any, total: Any, window: tuple[float | None, float | None], stream: bool
) -> dict[str, Any] | None:
    """The ``steady`` object: the window's share of the run and its figures (Aggregates)."""
    since, until = window
    if since is None or total.first_start is None:
        return None
    end = until if until is not None else total.last_end or since
    run_s = total.duration_s
    window_s = max(0.0, min(end, total.last_end or end) - max(since, total.first_start))
    seconds = steady.duration_s
    lat = steady.hist["ttft_ms"] if stream else steady.hist["latency_ms"]
    e2e = steady.hist["e2e_ms"] if stream else lat

    def rate(n: float) -> float | None:
        return n / seconds if seconds > 0 else None

    return {
        "definition": STEADY_DEFINITION,
        "from_wall": since,
        "until_wall": until,
        "window_s": window_s,
        "share_of_run_percent": 100.0 * window_s / run_s if run_s > 0 else None,
        "requests": steady.requests,
        "failures": steady.failed,
        "duration_s": seconds,
        "output_tokens": int(steady.sums["output_tokens"]),
        "output_tokens_per_s": rate(steady.sums["output_tokens"]),
        "requests_per_s": rate(steady.requests),
        "ttft_p50_ms": lat.percentile(50) if stream else None,
        "ttft_p99_ms": lat.percentile(99) if stream else None,
        "tpot_p50_ms": steady.hist["tpot_ms"].percentile(50),
        "e2e_p50_ms": e2e.percentile(50),
        "e2e_p99_ms": e2e.percentile(99),
    }


def steady_lines(sd: dict[str, Any] | None) -> list[str]:
    if not sd:
        return []
    share = sd["share_of_run_percent"]
    return [
        f"  steady window: {sd['window_s']:.1f} s ({_pct(share)} % of the run, all users "
        f"running until the first stopped): {sd['requests']} requests, "
        f"{_ms(sd['output_tokens_per_s'])} output tokens/s, {_ms(sd['requests_per_s'])} req/s, "
        f"TTFT p50 {_ms(sd['ttft_p50_ms'])} ms, p99 {_ms(sd['ttft_p99_ms'])} ms, "
        f"E2E p99 {_ms(sd['e2e_p99_ms'])} ms"
    ]


def sweep_rows(
    steps: dict[int, Aggregate], settings: Settings, started: list[float], ended: list[float]
) -> list[dict[str, Any]]:
    """One row per sweep step: the throughput/latency curve."""
    rows = []
    for i, start in enumerate(started):
        agg = steps.get(i, Aggregate())
        end = ended[i] if i < len(ended) else start
        seconds = max(end - start, 1e-9)
        h = agg.hist
        lat = h["ttft_ms"] if settings.stream else h["latency_ms"]
        rows.append(
            {
                "step": i,
                settings.sweep_of: settings.sweep[i],
                "duration_s": end - start,
                "requests": agg.requests,
                "failures": agg.failed,
                "output_tokens_per_s": agg.sums["output_tokens"] / seconds,
                "requests_per_s": agg.requests / seconds,
                "ttft_p50_ms": lat.percentile(50) if settings.stream else None,
                "ttft_p99_ms": lat.percentile(99) if settings.stream else None,
                "tpot_p50_ms": h["tpot_ms"].percentile(50),
                "e2e_p50_ms": (h["e2e_ms"] if settings.stream else lat).percentile(50),
                "e2e_p99_ms": (h["e2e_ms"] if settings.stream else lat).percentile(99),
            }
        )
    return rows
