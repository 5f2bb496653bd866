"""The end of a run: facts -> :class:`RunInfo`, the summary printed and written, the exit code.

Reads only the run context, the tally and the run control's outcome; writes nothing back.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import Any

from locust import __version__ as locust_version

from .. import __version__
from ..measure.per_request import MAX_USAGE_TOKENS
from ..measure.tally import Tally
from ..options.settings import Settings
from ..report.capacity import steady_dict, sweep_rows
from ..report.cost import cost_dict
from ..report.safe_text import for_terminal
from ..report.summary import RunInfo, seed_lines, summary_dict, table_lines
from ..report.writers import OutputError, write_json
from .context import RunContext
from .control import RunControl
from .serverwatch import abort_check, server_lines

__all__ = [
    "EXIT_ABORTED",
    "EXIT_NOTHING_COMPLETED",
    "EXIT_SLO",
    "EXIT_UNWRITABLE",
    "exit_code",
    "finish",
    "lag_note",
    "live_info",
    "print_and_write",
    "run_info",
    "workload",
]

LAG_WARN_MS = 5.0  # p99 loop lag above this makes timings uncertain: say so
LATE_START_MS = 10.0  # open loop: a request started this late means the users could not keep up
EXIT_SLO = 3  # --slo-target missed
EXIT_ABORTED = 4  # stopped because every request failed for --max-failing-seconds
EXIT_UNWRITABLE = 5  # the summary JSON, the records file or the HTML report could not be written
EXIT_NOTHING_COMPLETED = 6  # no request of the measured period finished, ok or failed


BUSY_CPU = 0.8  # this process's CPU share above which a lagging loop is its own load


def lag_note(p99_ms: float, cpu_share: float | None) -> str:
    """Why the event loop lagged: this process's own load (it used the CPU: add workers) or
    contention (it did not, so another process had the CPU: free the machine)."""
    head = f"the load generator's event loop lagged (p99 {p99_ms:.1f} ms): timings carry that "
    head += "much uncertainty"
    if cpu_share is None:  # a master: its workers' CPU is theirs
        return head + "; add workers, or free the machines they run on"
    pct = f"{cpu_share * 100:.0f}%"
    if cpu_share >= BUSY_CPU:
        return head + f"; this process used {pct} of a CPU: it is the bottleneck, add workers"
    return (
        head + f"; this process used only {pct} of a CPU, so other processes on the machine "
        "took it (CPU contention): free the machine or run the load elsewhere"
    )


def workload(s: Settings) -> str:
    """The run's prompt source in a few words (the summary's ``workload``), no file contents."""
    if s.trace:
        what = f"trace replay ({os.path.basename(s.trace)})"
    elif s.prefix_tokens:
        what = f"shared prefix ({s.prefix_tokens} tokens, {s.prefix_count} prefixes)"
    elif s.dataset:
        what = f"dataset ({os.path.basename(s.dataset)})"
    elif s.input_tokens:
        what = f"synthetic prompts ({s.input_tokens} tokens)"
    else:
        what = f"built-in prompts (type {s.prompt_type})"
    if s.turns:
        what += ", conversations of " + (
            "every recorded turn" if s.turns_kept is None else f"{s.turns_kept} turns"
        )
    return what


def provenance(ctx: RunContext, control: RunControl) -> dict[str, Any]:
    """What reruns the test: when it started (ISO 8601, UTC), the versions, the options."""
    started = control.started_at_unix
    return {
        "started_at": None
        if started is None
        else datetime.fromtimestamp(started, tz=timezone.utc).isoformat(timespec="seconds"),
        "versions": {"llm_users": __version__, "locust": locust_version},
        "options": ctx.options,
    }


def run_info(
    ctx: RunContext,
    tally: Tally,
    control: RunControl,
    concurrency: int,
    workers: tuple[dict[str, Any], list[str]] | None = None,
    final: bool = True,
    server: dict[str, Any] | None = None,
    gpu: dict[str, Any] | None = None,
) -> RunInfo:
    """Facts for the summary; ``final=False`` for live views (no end-of-run warnings).

    ``workers`` (master only): from :meth:`~llm_users.plugin.distributed.MasterLink.summary`;
    ``server``: the server's own figures (:meth:`~llm_users.plugin.serverwatch.ServerWatch.result`);
    ``gpu``: the GPU page's (:meth:`~llm_users.plugin.gpuwatch.GpuWatch.result`).
    """
    s = ctx.settings
    agg = tally.total
    notes: list[str] = []
    extra: dict[str, Any] = {"notes": notes, "workload": workload(s), **provenance(ctx, control)}
    if tally.lag.count:
        summ = tally.lag.summary()
        extra["client_loop_lag_ms"] = {k: summ[k] for k in ("p50", "p99", "max", "count")}
        if (summ["p99"] or 0) > LAG_WARN_MS:
            notes.append(lag_note(float(summ["p99"] or 0), control.generator_cpu_share))
    if control.generator_cpu_share is not None:
        extra["generator_cpu_pct"] = round(control.generator_cpu_share * 100, 1)
    if s.warmup_requests or s.warmup_time or not tally.warmup.empty:
        w = tally.warmup
        extra["warmup"] = {
            "requests": w.requests + w.failed,
            "failures": w.failed,
            "failures_by_kind": dict(sorted(w.failures.items())),
            "warmup_requests": s.warmup_requests,
            "warmup_time_s": s.warmup_time,
        }
    if s.turns:
        extra["turns"] = tally.turns.summary()
        extra["conversations"] = {
            "completed": tally.turns.completed,
            "truncated_requests": tally.turns.truncated,
            "max_context_tokens": s.max_context_tokens or None,
            "history": s.history,
        }
    extra["timestamps"] = timestamps_info(tally.stamps, ctx.timestamps)
    if s.seed is not None:
        extra["seed"] = s.seed
    if s.request_rate:
        extra["request_rate"] = s.request_rate
        extra["arrivals"] = s.arrivals
        q = agg.hist["queue_delay_ms"]
        late = q.count - q.rank_below(LATE_START_MS) if q.count else 0
        if late:
            notes.append(
                f"the users could not keep up with {s.request_rate:g} requests/s: {late} "
                f"requests started more than {LATE_START_MS:g} ms late (max {q.max:.0f} ms); "
                "add users (-u); latency from the intended start is reported too"
            )
    clamped = agg.counts.get("usage_clamped", 0)
    if clamped:
        extra["usage_clamped_requests"] = clamped
        notes.append(
            f"{clamped} requests reported a usage count above {MAX_USAGE_TOKENS:,} tokens: "
            "clamped to it (the server's usage is wrong)"
        )
    if final and agg.empty:
        notes.append(
            "no request completed (ok or failed) in the measured period: nothing was measured; "
            f"exit code {EXIT_NOTHING_COMPLETED} (a server that never ends its answers? "
            "a --run-time shorter than one request?)"
        )
    extra["unreachable_s"] = round(tally.unreachable_s, 3)
    if tally.unreachable:
        spans = len(tally.unreachable)
        notes.append(
            f"the server could not be reached for {tally.unreachable_s:.1f} s in {spans} "
            f"span{'s' if spans > 1 else ''} (connections refused or reset before any "
            "response); users backed off, 50 ms doubling to 2 s"
        )
    extra["interrupted"] = control.interrupted
    if control.interrupted:
        dropped = control.dropped_in_flight
        extra["dropped_in_flight"] = dropped
        lost = "the requests" if dropped is None else f"{dropped} request{'s' * (dropped != 1)}"
        notes.append(
            f"the test was interrupted (Ctrl-C or SIGTERM) before its end: {lost} in flight "
            "then were dropped, in no figure"
        )
    if control.abort_reason:
        extra["aborted"] = control.abort_reason
        notes.append(f"the test was stopped: {control.abort_reason}")
    if workers is not None:
        extra["workers"] = workers[0]
        if final:
            notes.extend(workers[1])
    if server is not None:
        extra["server"] = server
    if final and s.cancel_rate and agg.counts["cancelled"]:
        srv = server or {}
        extra["abort_check"] = abort_check(
            agg.counts["cancelled"], srv.get("after_test"), srv.get("source")
        )
    if s.slo:
        extra["slo"] = dict(s.slo)
        extra["slo_target"] = s.slo_target or None
    steady = steady_dict(tally.steady, agg, control.steady_window, s.stream)
    if steady is not None:
        extra["steady"] = steady
    if control.search is not None:
        extra["search"] = control.search.summary()
    elif s.sweep and control.sweep is not None:
        sw = control.sweep
        extra["sweep"] = sweep_rows(tally.steps, s, sw.started_at, sw.ended_at)
    if gpu is not None:
        extra["gpu"] = gpu
    cost = cost_dict(
        s.gpu_hour_cost,
        s.gpus,
        gpu,
        agg.sums["output_tokens"],
        agg.sums["prompt_tokens"],
        agg.duration_s,
        extra.get("search"),
    )
    if cost is not None:
        extra["cost"] = cost
    return RunInfo(
        mode=s.mode,
        concurrency=concurrency,
        endpoint=s.endpoint,
        model=s.model,
        host=str(ctx.origin),
        max_tokens=s.max_tokens,
        tokenizer=s.tokenizer,
        prefix_workload=bool(s.prefix_tokens or s.trace),
        extra=extra,
    )


def timestamps_info(stamps: dict[str, float], configured: str) -> dict[str, Any]:
    """What timed the reads: ``source`` kernel, user or mixed (workers that differ), the
    kernel clock's offset uncertainty, and the requests timed by each."""
    kernel, user = int(stamps.get("kernel", 0)), int(stamps.get("user", 0))
    if kernel and user:
        source = "mixed"
    elif kernel:
        source = "kernel"
    elif user:
        source = "user"
    else:
        source = configured.split(" ", 1)[0]
    out: dict[str, Any] = {
        "source": source,
        "offset_uncertainty_us": round(stamps.get("uncertainty_us", 0.0), 3) if kernel else None,
        "kernel_requests": kernel,
        "user_requests": user,
    }
    if configured.startswith("user ("):
        out["why_user"] = configured[len("user (") : -1]
    if stamps.get("clock_steps"):
        out["clock_steps"] = int(stamps["clock_steps"])
    return out


def finish(
    env: Any,
    ctx: RunContext,
    tally: Tally,
    control: RunControl,
    master: Any,
    server: Any = None,
    errors: list[str] | None = None,
    gpu: Any = None,
) -> dict[str, Any]:
    """The end of a local or master run: print and write the summary, set the exit code.

    ``errors``: output files that could not be written already (the records file's)."""
    errors = [] if errors is None else errors
    info = live_info(env, ctx, tally, control, master, final=True, server=server, gpu=gpu)
    summary = print_and_write(ctx, tally, info, errors)
    aborted = control.abort_reason is not None
    code = exit_code(
        summary,
        ctx.settings.slo_target,
        aborted,
        unwritable=bool(errors),
        nothing_completed=tally.total.empty,
    )
    if code is not None:
        env.process_exit_code = code
    return summary


def live_info(
    env: Any,
    ctx: RunContext,
    tally: Tally,
    control: RunControl,
    master: Any,
    final: bool,
    server: Any = None,
    gpu: Any = None,
) -> RunInfo:
    """Run facts now (``master``: its MasterLink; ``server``: the ServerWatch; ``gpu``: the
    GpuWatch; or None)."""
    target = getattr(env.runner, "target_user_count", 0) or 0
    workers = master.summary() if master is not None else None
    concurrency = max(control.peak_users, target)
    figures = server.result() if final and server is not None else None
    gpu_figures = gpu.result() if final and gpu is not None else None
    return run_info(ctx, tally, control, concurrency, workers, final, figures, gpu_figures)


def print_and_write(
    ctx: RunContext, tally: Tally, info: RunInfo, errors: list[str] | None = None
) -> dict[str, Any]:
    """The seed's lines and the table on stdout; the JSON and HTML reports; returns the JSON.

    A file that cannot be written adds one line to ``errors`` (which may already hold the
    records file's); each line of ``errors`` is then printed on stderr. Nothing raises.
    """
    errors = [] if errors is None else errors
    summary = summary_dict(tally.total, info)
    lines = seed_lines(tally.total, info) + table_lines(tally.total, info)
    lines += server_lines(summary)
    print(for_terminal("\n".join(lines)), flush=True)
    s = ctx.settings
    if s.summary_json:
        try:
            write_json(s.summary_json, summary)
        except OutputError as exc:
            errors.append(str(exc))
    if s.html_report:
        from ..report.html import write_html_report

        try:
            write_html_report(
                s.html_report,
                summary,
                tally.total.hist,
                tally.total.timeseries(),
                summary.get("sweep"),
            )
        except OutputError as exc:
            errors.append(str(exc))
        except OSError as exc:
            errors.append(str(OutputError("HTML report", s.html_report, exc)))
    for line in errors:
        sys.stderr.write(f"llm-users: error: {for_terminal(line)}\n")
    sys.stderr.flush()
    return summary


def exit_code(
    summary: dict[str, Any],
    slo_target: float,
    aborted: bool,
    unwritable: bool = False,
    nothing_completed: bool = False,
) -> int | None:
    """4 when the run was aborted, 6 when no request completed, 5 when an output file could
    not be written, 3 when --slo-target was missed (with --search: when no probed load met
    it), else None (Locust decides)."""
    if aborted:
        return EXIT_ABORTED
    if nothing_completed:
        return EXIT_NOTHING_COMPLETED
    if unwritable:
        return EXIT_UNWRITABLE
    search = summary.get("search")
    if search is not None:  # the whole run's attainment mixes loads: the search's verdict
        return 0 if search["met_slo"] else EXIT_SLO
    goodput = summary.get("goodput")
    if goodput and slo_target:
        met = goodput["percent"] is not None and goodput["percent"] >= slo_target
        return 0 if met else EXIT_SLO
    return None
