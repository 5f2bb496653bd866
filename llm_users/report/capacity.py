"""The capacity search in the console summary: one row per probe, then the answer."""

from __future__ import annotations

from typing import Any

__all__ = ["search_lines"]


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
