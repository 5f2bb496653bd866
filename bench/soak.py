"""Soak: a long run against the simulator with every fault mixed in, memory sampled.

``python -m bench.soak [--minutes 30] [--users 64] [--json out.json]``. It checks that the
run keeps going unattended, that every failure is counted by kind (client counts against
the simulator's own), and that the load generator's memory stays flat.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from llm_users.simulator import SimulatorProcess
from llm_users.simulator.config import FAULTS as SIM_FAULTS

ROOT = Path(__file__).resolve().parents[1]
# Every failure the simulator can produce, mixed at random into 20 % of the requests.
FAULTS = list(SIM_FAULTS)


def _rss_mib(proc: psutil.Process) -> float:
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a child that just exited
            total += child.memory_info().rss
    return total / 2**20


def run(minutes: float, users: int, out_json: str | None) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    sim_cpu = cpus[-1] if len(cpus) > 1 else None
    knobs = dict(
        ttft_ms=30,
        itl_ms=5,
        output_tokens=40,
        faults=FAULTS,
        fault_rate=0.2,
        fault_after=5,
        stall_ms=3000,
        record_tokens=False,
        max_records=1000,
    )
    with SimulatorProcess(cpu=sim_cpu, **knobs) as sim, tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "locustfile.py"),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{int(minutes * 60)}s",
            "--host",
            sim.url,
            "--stream",
            "--max-tokens",
            "40",
            "--first-token-timeout",
            "1",
            "--max-failing-seconds",
            "0",
            "--stop-timeout",
            "10",
            "--summary-json",
            str(summary),
            "--only-summary",
        ]
        if sim_cpu is not None and len(cpus) > 1:
            cmd = ["taskset", "-c", str(cpus[0]), *cmd]
        started = time.monotonic()
        locust = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        ps = psutil.Process(locust.pid)
        samples: list[tuple[float, float]] = []
        while locust.poll() is None:
            time.sleep(10)
            try:
                rss = _rss_mib(ps)
            except psutil.Error:
                break
            if rss > 0:  # 0 once the process has exited
                samples.append((time.monotonic() - started, rss))
            if len(samples) % 6 == 0:
                print(f"  {samples[-1][0]:6.0f} s  RSS {samples[-1][1]:.1f} MiB", flush=True)
        output = locust.stdout.read() if locust.stdout else ""
        s = json.loads(summary.read_text())
        stats = sim.stats()
    warm = [m for t, m in samples if t >= 60] or [m for _, m in samples]
    result = {
        "minutes": minutes,
        "users": users,
        "exit_code": locust.returncode,
        "requests_ok": s["requests"],
        "failures": s["failures"],
        "failures_by_kind": s["failures_by_kind"],
        "simulator": stats,
        "rss_mib_after_1_min": warm[0] if warm else None,
        "rss_mib_at_end": warm[-1] if warm else None,
        "rss_mib_max": max(warm) if warm else None,
        "client_loop_lag_ms": s.get("client_loop_lag_ms"),
        "traceback_in_output": "Traceback" in output,
    }
    print(json.dumps(result, indent=2))
    if out_json:
        Path(out_json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--users", type=int, default=64)
    p.add_argument("--json", help="write the result here too")
    a = p.parse_args(argv)
    r = run(a.minutes, a.users, a.json)
    return 0 if r["requests_ok"] and not r["traceback_in_output"] else 1


if __name__ == "__main__":
    sys.exit(main())
