"""Markdown tables of the results, ready to paste into docs/performance/index.md."""

from __future__ import annotations

from typing import Any

from .scenarios import (
    FIDELITY,
    FOLLOW_MEAN_MS,
    INGEST_TOKENS,
    INGEST_TOKENS_PER_S,
    TARGET_STREAMS,
    TTFT_MEAN_MS,
    TTFT_P99_MS,
)


def _f(x: Any, digits: int = 2, signed: bool = False) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:+,.{digits}f}" if signed else f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" ok" if ok else " **MISS**")


def machine_lines(m: dict[str, Any], cores: str, command: str) -> list[str]:
    return [
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{_f(m['memory_gib'], 0)} GiB, Linux {m['kernel']}; Python {m['python']}, "
        f"locust {m['locust']}, gevent {m['gevent']}, geventhttpclient {m['geventhttpclient']}, "
        f"orjson {m['orjson']}, simulator on aiohttp {m['aiohttp']}.",
        f"Placement: {cores}. Command: `{command}`.",
    ]


def _mp(d: dict[str, Any] | None, key: str = "mean", other: str = "p99") -> str:
    d = d or {}
    return f"{_f(d.get(key), signed=True)} / {_f(d.get(other), signed=True)}"


def fidelity_lines(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        f"### Fidelity: client minus simulator ({FIDELITY['ttft_ms']:.0f} ms to first token, "
        f"{FIDELITY['itl_ms']:.0f} ms between tokens, {FIDELITY['output_tokens']} tokens)",
        "",
        "Δ = the plugin's figure minus the simulator's own, in ms: distributions (mean minus "
        "mean, p99 minus p99), as the targets are stated. Targets at "
        f"{TARGET_STREAMS} streams: TTFT mean within {TTFT_MEAN_MS:g} ms, p99 within "
        f"{TTFT_P99_MS:g} ms, follow latency mean within {FOLLOW_MEAN_MS:g} ms. "
        "*staggered*: user k of n starts k/n of a stream's length late, so streams stay "
        "evenly spread; *together*: all users start at once (Locust spawns a batch per "
        "second), so each round of requests arrives as one burst.",
        "",
        "| streams | start | ok / failed | TTFT Δ mean | TTFT Δ p99 | follow Δ mean "
        "| follow Δ p99 | loop lag p50 / p99 / max | locust CPU (whole run) | client CPU per event "
        "| simulator CPU | other load on locust's CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, f, lag, tg = r["ttft"], r["follow"], r.get("loop_lag_ms") or {}, r.get("targets", {})
        out.append(
            f"| {r['streams']} | {r['start']} | {r['client_ok']} / {r['client_failed']} "
            f"| {_f(t['d_mean'], signed=True)}{_mark(tg.get('ttft_mean'))} "
            f"| {_f(t['d_p99'], signed=True)}{_mark(tg.get('ttft_p99'))} "
            f"| {_f(f['d_mean'], signed=True)}{_mark(tg.get('follow_mean'))} "
            f"| {_f(f['d_p99'], signed=True)} "
            f"| {_f(lag.get('p50'))} / {_f(lag.get('p99'))} / {_f(lag.get('max'))} "
            f"| {_f(r.get('locust_cpu_pct'), 0)} % | {_f(r.get('client_us_per_event'), 1)} µs "
            f"| {_f(r.get('sim_cpu_pct'), 0)} % | {_f(r.get('other_load_pct'), 0)} % |"
        )
    out += [
        "",
        "Per request, paired exactly (each request's `max_tokens` carries a tag that both the "
        "client's `--records` and the simulator's records keep), mean / p99 in ms. TTFT Δ = "
        "request delivery (client start to the simulator's `received_at`, stamped when the "
        "request's first bytes come off its socket: the kernel, and the simulator's event loop "
        "getting round to reading them) + first-token read delay (the simulator's write to the "
        "client's stamp: the client's own lateness). Follow Δ = end read delay - first-token "
        "read delay. (Each user opens its connection before its first request, so every "
        "request's wall-clock start is its timed start.)",
        "",
        "| streams | start | paired | TTFT Δ | request delivery | first-token read delay "
        "| end read delay | follow Δ |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        p = r["paired"]
        out.append(
            f"| {r['streams']} | {r['start']} | {p['matched']} "
            f"| {_mp(p['ttft_d'])} "
            f"| {_mp(p['delivery_ms'])} | {_mp(p['first_token_delay_ms'])} "
            f"| {_mp(p['end_delay_ms'])} | {_mp(p['follow_d'])} |"
        )
    notes = [f"- {r['note']}" for r in rows if r.get("note")]
    return out + ([""] + notes if notes else [])


def ingest_lines(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        f"### Ingest: whole {INGEST_TOKENS:,}-token streams written at once",
        "",
        "tokens/s = completed requests x tokens / (last done_at - first received_at), from the "
        f"simulator's records. Target: ≥ {INGEST_TOKENS_PER_S:,} tokens/s in one worker process.",
        "",
        "| worker processes | locust CPUs | users | requests ok / failed | tokens/s | "
        "client CPU per token | locust CPU (in the window) | simulator CPU "
        "| other load on locust's CPU "
        "| loop lag p99 / max | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lag = r.get("loop_lag_ms") or {}
        mark = _mark(r.get("target")) if "target" in r else ""
        out.append(
            f"| {r['processes']} | {r.get('locust_cores') or 'any'} | {r['users']} "
            f"| {r['client_ok']} / {r['client_failed']} "
            f"| {_f(r.get('tokens_per_s'), 0)}{mark} | {_f(r.get('client_us_per_token'))} µs "
            f"| {_f(r.get('locust_cpu_pct'), 0)} % | {_f(r.get('sim_cpu_pct'), 0)} % "
            f"| {_f(r.get('other_load_pct'), 0)} % | {_f(lag.get('p99'))} / {_f(lag.get('max'))} "
            f"| {_f(r.get('peak_rss_mib'), 0)} MiB |"
        )
    notes = [f"- {r['note']}" for r in rows if r.get("note")]
    return out + ([""] + notes if notes else [])


def memory_lines(row: dict[str, Any]) -> list[str]:
    out = [
        "### Memory: RSS of the locust process (streams of 2 tokens)",
        "",
        "| after requests | RSS MiB | peak RSS MiB |",
        "|---:|---:|---:|",
    ]
    for m in row.get("marks", []):
        out.append(f"| {m['completed']:,} | {_f(m['rss_mib'], 1)} | {_f(m['peak_rss_mib'], 1)} |")
    out += [
        "",
        f"{row['completed']:,} requests in {_f(row['elapsed_s'], 1)} s "
        f"({_f(row.get('requests_per_s'), 0)} requests/s); RSS growth "
        f"{_f(row.get('growth_kib_per_10k'), 1)} KiB per 10,000 requests; "
        f"flat:{_mark(row.get('target'))}.",
    ]
    if row.get("note"):
        out += ["", f"- {row['note']}"]
    return out
