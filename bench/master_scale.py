"""``python -m bench.master_scale``: how many workers one master holds.

A real Locust ``MasterRunner`` with the plugin runs in a child process; N simulated workers
(zmq DEALER sockets in this process, as Locust's ``WorkerRunner`` has) announce themselves
(``client_ready``) and send it a heartbeat every second and the worker report every 3 s,
staggered. Each report is what a real worker sends: Locust's own stats
and the plugin's delta (a ``Tally.to_dict()``), built by the plugin's real ``complete()``
from 3 s of 128 streams (200 ms to first token, 20 ms between tokens, 100 tokens, with
log-normal spreads of 20 % and 10 %, and now and then a longer gap). The master's CPU time
per report, the bytes per report and the plugin's merge time per report are measured in
the master process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

INTERVAL_S = 3.0  # Locust's worker report interval (WORKER_REPORT_INTERVAL)
STREAMS = 128  # concurrent streams of one worker (docs/guides/kubernetes.md's sizing)
TTFT_MS, ITL_MS, TOKENS = 200.0, 20.0, 100
HEARTBEAT = {"current_cpu_usage": 50.0, "current_memory_usage": 60_000_000}  # Locust's, 1 s


# -- the worker's side: realistic reports ------------------------------------------------
def worker_reports(kinds: int, seed: int = 1) -> list[dict[str, Any]]:
    """``kinds`` distinct 3-second worker reports (Locust stats + the plugin's delta)."""
    from locust.stats import setup_distributed_stats_event_listeners

    from llm_users.record import RequestRecord

    from .hotpath import offline_plugin

    plugin = offline_plugin()
    env = plugin.env
    setup_distributed_stats_event_listeners(env.events, env.stats)
    rng = random.Random(seed)
    t0 = time.time()
    clock = 1000.0  # perf_counter-like seconds
    # Each stream starts its next request as the last ends: when each stream is free.
    free = [clock + rng.random() * 2.2 for _ in range(STREAMS)]
    out = []
    for k in range(kinds):
        window_end = clock + INTERVAL_S * (k + 1)
        for s in range(STREAMS):
            while True:
                start = free[s]
                times = [start + TTFT_MS * rng.lognormvariate(0.0, 0.2) / 1000.0]
                for _ in range(TOKENS - 1):
                    itl = ITL_MS * rng.lognormvariate(0.0, 0.1)
                    if rng.random() < 0.01:  # a batch boundary: a longer gap now and then
                        itl += rng.uniform(5, 40)
                    times.append(times[-1] + itl / 1000.0)
                end = times[-1] + 0.0002
                if end > window_end:
                    break
                rec = RequestRecord(
                    endpoint="chat",
                    stream=True,
                    start=start,
                    start_wall=t0 + (start - clock),
                    max_tokens=TOKENS,
                    status=200,
                    headers_at=times[0] - 0.0005,
                    token_times=times,
                    texts=[" tok"] * TOKENS,
                    first_content_at=times[0],
                    end=end,
                    usage={"prompt_tokens": 20, "completion_tokens": 100, "total_tokens": 120},
                    finish_reason="length",
                    events=TOKENS + 3,
                )
                plugin.complete(rec)
                free[s] = end + rng.uniform(0.0005, 0.003)
        data: dict[str, Any] = {}
        env.events.report_to_master.fire(client_id="w", data=data)
        data["llm_users"] = plugin.sink.take().to_dict()
        data["user_count"] = STREAMS
        data["user_classes_count"] = {"LLMUser": STREAMS}
        data["current_cpu_usage"] = 50.0
        data["current_memory_usage"] = 60_000_000
        out.append(data)
    return out


# -- the master's side --------------------------------------------------------------------
def master_main(port_file: str, result_file: str, duration: float) -> None:
    """A real MasterRunner with the plugin; counts and times what the reports cost."""
    import gevent
    from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments
    from locust.env import Environment
    from locust.event import Events

    from llm_users import LLMUser, add_arguments, setup

    parser = get_empty_argument_parser()
    setup_parser_arguments(parser)
    add_arguments(parser)
    opts = parser.parse_args(["--master", "--headless", "--stream", "--preflight", "off"])
    env = Environment(
        user_classes=[LLMUser], events=Events(), host="http://127.0.0.1:9", parsed_options=opts
    )
    plugin = setup(env)
    runner = env.create_master_runner("127.0.0.1", 0)
    plugin.on_init()
    link = plugin.master
    assert link is not None
    stats: dict[str, Any] = {"reports": 0, "merge_s": 0.0, "first": None, "last": None}
    merge = link.merge

    def timed_merge(client_id: str, payload: dict[str, Any], final: bool) -> None:
        t = time.perf_counter()
        merge(client_id, payload, final)
        stats["merge_s"] += time.perf_counter() - t
        stats["reports"] += 1
        now = (time.perf_counter(), time.process_time())
        if stats["first"] is None:
            stats["first"] = now
        stats["last"] = now

    link.merge = timed_merge  # type: ignore[method-assign]
    Path(port_file).write_text(str(runner.server.port))
    gevent.sleep(duration)
    tally = plugin.sink.tally
    stats["requests_merged"] = tally.total.requests
    stats["rss_kib"] = _rss_kib()
    Path(result_file).write_text(json.dumps(stats))
    runner.quit()


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- one run: N workers against one master -------------------------------------------------
def run(workers: int, rounds: int, reports: list[dict[str, Any]]) -> dict[str, Any]:
    import gevent
    from locust import __version__
    from locust.rpc import Message
    from locust.rpc.zmqrpc import Client

    duration = rounds * INTERVAL_S
    with tempfile.TemporaryDirectory(prefix="llm-users-master-") as tmp:
        port_file, result_file = f"{tmp}/port", f"{tmp}/result.json"
        cmd = [sys.executable, "-m", "bench.master_scale", "--serve", port_file, result_file]
        cmd.append(str(duration + 4.0))
        proc = subprocess.Popen(cmd)
        try:
            deadline = time.time() + 60
            while not os.path.exists(port_file) or not Path(port_file).read_text():
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("the master did not start")
                time.sleep(0.05)
            port = int(Path(port_file).read_text())
            ids = [f"worker-{i:04d}_{'0' * 32}" for i in range(workers)]
            clients = [Client("127.0.0.1", port, cid) for cid in ids]
            blobs = [
                [Message("stats", reports[(i + r) % len(reports)], cid).serialize()
                 for r in range(len(reports))]
                for i, cid in enumerate(ids)
            ]  # fmt: skip
            sizes = [len(b) for row in blobs for b in row]
            # A worker announces itself, then beats every second and reports every 3 s.
            for cid, client in zip(ids, clients, strict=True):
                client.socket.send(Message("client_ready", __version__, cid).serialize())
            beats = [
                Message("heartbeat", {**HEARTBEAT, "state": "running"}, cid).serialize()
                for cid in ids
            ]
            gevent.sleep(0.5)  # let the connections settle
            plan = [  # (due, worker, report round or -1 for a heartbeat), staggered
                (r * INTERVAL_S + (i + j / 3) * INTERVAL_S / workers, i, -1 if j else r)
                for r in range(rounds)
                for i in range(workers)
                for j in range(3)
            ]
            plan.sort()
            t0 = time.perf_counter()
            sent = 0
            for due, i, r in plan:
                wait = t0 + due - time.perf_counter()
                if wait > 0:
                    gevent.sleep(wait)
                if r < 0:
                    clients[i].socket.send(beats[i])
                else:
                    clients[i].socket.send(blobs[i][r % len(reports)])
                    sent += 1
            proc.wait(timeout=duration + 60)
            res = json.loads(Path(result_file).read_text())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for c in locals().get("clients", []):
                c.close(linger=0)
    got = res["reports"]
    (w0, c0), (w1, c1) = res["first"], res["last"]
    # Everything the master did between the first and the last report, its heartbeats too.
    per_report_cpu = (c1 - c0) / (got - 1) if got > 1 else None
    return {
        "workers": workers,
        "reports_sent": sent,
        "reports_merged": got,
        "bytes_per_report": sum(sizes) / len(sizes),
        "master_cpu_ms_per_report": per_report_cpu * 1000 if per_report_cpu else None,
        "merge_ms_per_report": res["merge_s"] / got * 1000 if got else None,
        "master_cpu_pct": 100 * (c1 - c0) / (w1 - w0) if w1 > w0 else None,
        "requests_merged": res["requests_merged"],
        "master_rss_mib": res["rss_kib"] / 1024,
    }


def capacity(row: dict[str, Any], budget: float = 0.5) -> int | None:
    """Workers one master holds within ``budget`` of one core, from the CPU per report."""
    ms = row.get("master_cpu_ms_per_report")
    return int(budget * INTERVAL_S * 1000 / ms) if ms else None


def lines(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| workers | bytes per report | master CPU per report (+3 heartbeats) | merge per report "
        "| master CPU (one core) | reports merged |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['workers']:,} | {r['bytes_per_report'] / 1024:.1f} KiB "
            f"| {r['master_cpu_ms_per_report']:.2f} ms | {r['merge_ms_per_report']:.2f} ms "
            f"| {r['master_cpu_pct']:.1f} % | {r['reports_merged']:,}/{r['reports_sent']:,} |"
        )
    cap = [c for c in (capacity(r) for r in rows) if c]
    if cap:
        out.append("")
        out.append(
            f"At the largest N's CPU per report, one master holds about {cap[-1]:,} workers "
            f"within 50 % of one core (3-second reports)."
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.master_scale", description=__doc__)
    ap.add_argument("--workers", default="10,100,1000", help="comma-separated N")
    ap.add_argument("--rounds", type=int, default=4, help="reports per worker (3 s apart)")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--serve", nargs=3, metavar=("PORT_FILE", "RESULT_FILE", "SECONDS"))
    args = ap.parse_args(argv)
    if args.serve:
        master_main(args.serve[0], args.serve[1], float(args.serve[2]))
        return 0
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket per worker
    reports = worker_reports(kinds=5)[1:]  # the first is the ramp-up
    rows = []
    for n in (int(x) for x in args.workers.split(",")):
        rows.append(run(n, args.rounds, reports))
        print(json.dumps(rows[-1]), flush=True)
    print("\n".join(["", "## Master at scale", "", *lines(rows)]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
