"""Aligned streams: one global decode clock (``decode_clock=global``), as a batching server.

Every running stream's token is written in the same decode step, so all sockets become
readable at once and the client reads them one by one. Rows at 128, 512 and 1,024 streams in
ONE worker process, with and without ``--tokenizer``, with and without a CPU hog on the load
generator's core; kernel and user timestamps back to back on the same simulator.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from .harness import (
    TAGGED_LOCUSTFILE,
    mean,
    percentile,
    run_locust,
    simulator_class,
    sub,
    wall_minus_perf,
)
from .scenarios import Context, _check, _compare, _lag, _other_load, _pct, _server_rows

ALIGNED = {"ttft_ms": 200.0, "itl_ms": 20.0, "output_tokens": 100}
STREAM_S = (ALIGNED["ttft_ms"] + (ALIGNED["output_tokens"] - 1) * ALIGNED["itl_ms"]) / 1000.0
# Targets (tokenizer on, kernel stamps, 128 and 512 streams), ms.
TARGETS = {"ttft_mean": 0.3, "ttft_p99": 1.0, "follow_mean": 0.3, "itl_mean": 0.1}


def plan(quick: bool) -> list[tuple[int, bool, bool]]:
    """(streams, tokenizer, CPU hog); each row runs with kernel, then user, timestamps."""
    sizes = (128, 512) if quick else (128, 512, 1024)
    return [(n, tok, hog) for hog in (False, True) for n in sizes for tok in (True, False)]


@contextlib.contextmanager
def cpu_hog(cpu: str | None) -> Iterator[None]:
    """A busy process on the load generator's core for the duration (None: no pinning, none)."""
    if cpu is None:
        yield
        return
    hog = subprocess.Popen(
        ["taskset", "-c", cpu, sys.executable, "-c", "while True: pass"],
        stdin=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def _server_itl_ms(server: list[dict[str, Any]]) -> list[float]:
    """The gaps between a stream's successive token-carrying events, ms (as the client's ITL:
    per event; events of one write share its time, a gap of 0)."""
    gaps: list[float] = []
    for r in server:
        times, per_event = r.get("token_times") or [], r.get("tokens_per_event") or []
        i, prev = 0, None
        for n in per_event:
            t = times[i]
            i += n
            if prev is not None:
                gaps.append((t - prev) * 1000.0)
            prev = t
    return gaps


def _follow_vs_last_write(run: Any, server: list[dict[str, Any]]) -> dict[str, Any]:
    """Follow latency Δ per request (paired by tag) against the simulator's last write.

    On the global clock the last token, the finish and usage chunks and ``[DONE]`` go out in
    one write (the last tick's); the simulator stamps ``done_at`` only after its handler
    resumes from the clock (after that tick's other streams and the chunked terminator), so
    ``done_at`` is late by up to a tick's pass. Its last token write time is the truth here.
    """
    by_tag: dict[Any, list[dict[str, Any]]] = {}
    for s in server:
        by_tag.setdefault(s.get("max_tokens"), []).append(s)
    d: list[float] = []
    for c in run.records:
        match = by_tag.get(c.get("max_tokens"))
        if not c.get("ok") or c.get("follow_latency_ms") is None or not match or len(match) != 1:
            continue
        srv = match[0]
        times = srv.get("token_times") or []
        if times and srv["first_token_at"] is not None:
            d.append(c["follow_latency_ms"] - (times[-1] - srv["first_token_at"]) * 1000.0)
    return {"mean": mean(d), "p99": percentile(d, 99), "count": len(d)}


def aligned(ctx: Context) -> list[dict[str, Any]]:
    sim_cls = simulator_class()
    from llm_users.simulator.tokenizer import save_tokenizer

    tok_dir = save_tokenizer(ctx.dir("tokenizer"))
    knobs = dict(ALIGNED, decode_clock="global", record_tokens=True, max_records=100_000)
    rows = []
    with sim_cls(cpu=ctx.cores.sim, **knobs) as sim:
        for streams, tokenizer, hog in plan(ctx.quick):
            for stamps in ("kernel", "user"):
                run = functools.partial(
                    _aligned_run, ctx, sim, streams, tokenizer, hog, stamps, str(tok_dir)
                )
                with cpu_hog(ctx.cores.locust if hog else None):
                    rows.append(run())
    return rows


def _aligned_run(
    ctx: Context,
    sim: Any,
    streams: int,
    tokenizer: bool,
    hog: bool,
    stamps: str,
    tok_dir: str,
) -> dict[str, Any]:
    sim.reset()
    per_user = 2
    name = f"aligned-{streams}-{'tok' if tokenizer else 'notok'}-{'hog' if hog else 'quiet'}"
    name += f"-{stamps}"
    ctx.log(f"aligned: {name}")
    args = [
        *("-u", str(streams), "-r", str(streams), "--host", sim.url, "--stream"),
        *("--requests-per-user", str(per_user), "--timestamps", stamps),
        *(("--tokenizer", tok_dir) if tokenizer else ()),
        *("--only-summary", "--loglevel", "WARNING"),
    ]
    # Arrivals spread over one stream's length (no burst in request delivery); the global
    # clock aligns every stream's tokens anyway.
    env = {"LLM_BENCH_USERS": str(streams), "LLM_BENCH_STAGGER_S": str(STREAM_S)}
    load0 = os.getloadavg()[0]
    offset0 = wall_minus_perf()
    run = run_locust(
        args, ctx.cores, ctx.dir(name), timeout=300, locustfile=TAGGED_LOCUSTFILE, env=env
    )
    offset1 = wall_minus_perf()
    server = _server_rows(sim.records())
    row = _compare(run, server, (offset0 + offset1) / 2)
    row["follow_last_write"] = _follow_vs_last_write(run, server)
    itl_c = ((run.summary or {}).get("itl_ms") or {}).get("mean")
    itl_s = mean(_server_itl_ms(server))
    row.update(
        streams=streams,
        tokenizer=tokenizer,
        hog=hog,
        stamps=stamps,
        summary_timestamps=(run.summary or {}).get("timestamps"),
        itl={"client_mean": itl_c, "server_mean": itl_s, "d_mean": sub(itl_c, itl_s)},
        loop_lag_ms=_lag(run),
        locust_cpu_pct=_pct(run.cpu_s, run.elapsed_s),
        other_load_pct=_other_load(ctx, run),
        load_avg_1m=load0,
        note=_check(ctx, run, name),
    )
    if tokenizer and stamps == "kernel" and streams in (128, 512):
        # The plugin's own error: its first-token stamp minus the simulator's write (request
        # delivery, the simulator's loop reading the request, is not the client's), and
        # follow latency against the last write.
        first = (row.get("paired") or {}).get("first_token_delay_ms") or {}
        row["targets"] = {
            "ttft_mean": _within(first.get("mean"), TARGETS["ttft_mean"]),
            "ttft_p99": _within(first.get("p99"), TARGETS["ttft_p99"]),
            "follow_mean": _within(row["follow_last_write"]["mean"], TARGETS["follow_mean"]),
            "itl_mean": _within(row["itl"]["d_mean"], TARGETS["itl_mean"]),
        }
    return row


def _within(x: float | None, limit: float) -> bool | None:
    return None if x is None else abs(x) <= limit


def lines(rows: list[dict[str, Any]]) -> list[str]:
    def f(x: Any, signed: bool = True, digits: int = 2) -> str:
        if x is None:
            return "-"
        return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"

    def mark(ok: bool | None) -> str:
        return "" if ok is None else (" ✓" if ok else " ✗")

    out = [
        f"### Aligned streams (decode_clock=global: {ALIGNED['ttft_ms']:.0f} ms to first token, "
        f"{ALIGNED['itl_ms']:.0f} ms between tokens, {ALIGNED['output_tokens']} tokens), one "
        "worker process",
        "",
        "Per request, paired by tag, ms. TTFT error = the client's first-token stamp minus the "
        "simulator's write of it; follow error = the client's follow latency minus the "
        "simulator's (last write minus first); ITL Δ = mean minus mean. TTFT Δ (distribution, as "
        "the fidelity table) adds request delivery, the simulator's loop getting round to "
        "reading the request. Targets (tokenizer on, kernel stamps, 128 and 512): TTFT error "
        "mean <= 0.3, p99 <= 1; follow error mean <= 0.3; ITL Δ mean <= 0.1.",
        "",
        "| streams | tokenizer | CPU hog | stamps | ok / failed | **TTFT error** (first-token "
        "read delay) mean / p99 | **follow error** (vs last write) mean / p99 | **ITL Δ mean** "
        "| TTFT Δ mean / p99 | request delivery mean / p99 | follow Δ (vs done_at) mean "
        "| loop lag p50 / p99 | locust CPU | load avg |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, fo, tg = r["ttft"], r["follow"], r.get("targets", {})
        lag = r.get("loop_lag_ms") or {}
        paired = r.get("paired") or {}
        first = paired.get("first_token_delay_ms") or {}
        flw = r.get("follow_last_write") or {}
        deliver = paired.get("delivery_ms") or {}
        out.append(
            f"| {r['streams']} | {'on' if r['tokenizer'] else 'off'} "
            f"| {'yes' if r['hog'] else 'no'} | {r['stamps']} "
            f"| {r['client_ok']} / {r['client_failed']} "
            f"| {f(first.get('mean'))}{mark(tg.get('ttft_mean'))} / "
            f"{f(first.get('p99'))}{mark(tg.get('ttft_p99'))} "
            f"| {f(flw.get('mean'))}{mark(tg.get('follow_mean'))} / {f(flw.get('p99'))} "
            f"| {f(r['itl']['d_mean'], digits=3)}{mark(tg.get('itl_mean'))} "
            f"| {f(t['d_mean'])} / {f(t['d_p99'])} "
            f"| {f(deliver.get('mean'))} / {f(deliver.get('p99'))} "
            f"| {f(fo['d_mean'])} "
            f"| {f(lag.get('p50'), False)} / {f(lag.get('p99'), False)} "
            f"| {f(r.get('locust_cpu_pct'), False, 0)} % | {f(r.get('load_avg_1m'), False, 1)} |"
        )
    return out


__all__ = ["aligned", "lines", "plan"]
