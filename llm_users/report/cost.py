"""What a token costs: GPU energy per output token, and dollars per 1M tokens from a GPU-hour
price at the measured throughput (the run's, and a search's highest passing load)."""

from __future__ import annotations

from typing import Any

__all__ = ["cost_dict", "cost_lines", "dollars_per_million", "gpu_lines"]

SECONDS_PER_HOUR = 3600.0


def dollars_per_million(
    gpu_hour_cost: float, gpus: int, tokens_per_s: float | None
) -> float | None:
    """``gpus`` GPUs at ``gpu_hour_cost`` dollars an hour each, serving ``tokens_per_s``:
    the dollars one million tokens cost. None without throughput."""
    if not tokens_per_s or tokens_per_s <= 0:
        return None
    return gpu_hour_cost * gpus / SECONDS_PER_HOUR / tokens_per_s * 1e6


def cost_dict(
    gpu_hour_cost: float,
    gpus_given: int,
    gpu: dict[str, Any] | None,
    output_tokens: float,
    prompt_tokens: float,
    duration_s: float,
    search: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The ``cost`` object: energy per output token (with a GPU page), dollars per 1M output
    and total tokens (with a price), at the run's throughput and the search's answer."""
    page = gpu if gpu and gpu.get("scrapes") else None
    energy = page.get("energy_j") if page else None
    out: dict[str, Any] = {}
    if energy is not None and output_tokens > 0:
        out["energy_j"] = energy
        out["energy_per_output_token_j"] = energy / output_tokens
        out["energy_from"] = page["energy_from"] if page else None
    if gpu_hour_cost <= 0:
        return out or None
    gpus, gpus_from = gpus_given, "--gpus"
    if not gpus:
        counted = page.get("gpus") if page else None
        gpus, gpus_from = (counted, "the GPU page") if counted else (1, "default (--gpus 0)")
    out.update(
        {
            "gpu_hour_cost": gpu_hour_cost,
            "gpus": gpus,
            "gpus_from": gpus_from,
            "basis": "the GPU page and --gpu-hour-cost"
            if page
            else "--gpu-hour-cost and --gpus alone (no GPU page)",
        }
    )
    seconds = duration_s if duration_s > 0 else 0.0
    out_rate = output_tokens / seconds if seconds else None
    total_rate = (output_tokens + prompt_tokens) / seconds if seconds and prompt_tokens else None
    out["dollars_per_million_output_tokens"] = dollars_per_million(gpu_hour_cost, gpus, out_rate)
    out["dollars_per_million_total_tokens"] = dollars_per_million(gpu_hour_cost, gpus, total_rate)
    if not prompt_tokens:
        out["total_tokens_note"] = "the server reported no prompt tokens (usage)"
    best = (search or {}).get("highest_passing")
    if best:
        out["at_highest_passing_load"] = {
            "load": best["load"],
            "dollars_per_million_output_tokens": dollars_per_million(
                gpu_hour_cost, gpus, best.get("output_tokens_per_s")
            ),
            "dollars_per_million_total_tokens": dollars_per_million(
                gpu_hour_cost, gpus, best.get("total_tokens_per_s")
            ),
        }
    return out


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"${x:,.4f}"


def _gauge(d: Any, unit: str) -> str:
    if not isinstance(d, dict):
        return "n/a"
    return f"mean {d['mean']:,.1f}{unit}, max {d['max']:,.1f}{unit}"


def gpu_lines(gpu: dict[str, Any] | None) -> list[str]:
    """Console lines for the summary's ``gpu`` dict."""
    if not gpu:
        return []
    if not gpu.get("scrapes"):
        return [f"  GPU metrics ({gpu['source']}): {gpu.get('not_available') or 'none'}"]
    energy = gpu.get("energy_j")
    return [
        f"  GPU metrics ({gpu['source']}, {gpu.get('gpus') or '?'} GPUs, {gpu['scrapes']} "
        f"scrapes over {gpu['window_s']:.1f} s, {gpu['failed_scrapes']} failed)",
        f"    power: {_gauge(gpu.get('power_w'), ' W')}   utilisation: "
        f"{_gauge(gpu.get('utilization_percent'), ' %')}   memory used: "
        f"{_gauge(gpu.get('memory_used_mib'), ' MiB')}",
        "    energy: n/a"
        if energy is None
        else f"    energy: {energy:,.1f} J (from the {gpu['energy_from']})",
    ]


def cost_lines(cost: dict[str, Any] | None) -> list[str]:
    """Console lines for the summary's ``cost`` dict."""
    if not cost:
        return []
    lines = []
    if cost.get("energy_per_output_token_j") is not None:
        lines.append(
            f"  energy per output token: {cost['energy_per_output_token_j']:.4f} J "
            f"({cost['energy_j']:,.1f} J over the GPU window)"
        )
    if "gpu_hour_cost" in cost:
        per_out = _money(cost["dollars_per_million_output_tokens"])
        per_total = _money(cost["dollars_per_million_total_tokens"])
        lines.append(
            f"  cost at the measured throughput: {per_out} per 1M output tokens, {per_total} "
            f"per 1M total tokens ({cost['gpus']} GPUs from {cost['gpus_from']} at "
            f"${cost['gpu_hour_cost']:g}/GPU-hour; from {cost['basis']})"
        )
        best = cost.get("at_highest_passing_load")
        if best:
            lines.append(
                f"    at the highest load meeting the SLO ({best['load']:g}): "
                f"{_money(best['dollars_per_million_output_tokens'])} per 1M output tokens, "
                f"{_money(best['dollars_per_million_total_tokens'])} per 1M total tokens"
            )
    return lines
