"""``python -m bench [--quick] [--only fidelity,ingest,...,aligned] [--json out.json]``.

``aligned`` (the global decode clock, kernel and user timestamps) runs only when named.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import aligned, report, scenarios
from .harness import Cores, machine_info

SECTIONS = ("fidelity", "ingest", "distributed", "memory", "aligned")
DEFAULT = ("fidelity", "ingest", "distributed", "memory")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The plugin (real locust subprocesses) against the simulator, whose own "
        "timestamps are the ground truth. A full run takes about 3 minutes on a quiet "
        "2-core machine (more while other processes keep a core busy: it waits for them).",
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests (about 1-2 minutes)")
    parser.add_argument(
        "--only", default=",".join(DEFAULT), help=f"comma-separated, of: {', '.join(SECTIONS)}"
    )
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    parser.add_argument(
        "--workdir", metavar="DIR", help="keep each run's summary, records and output here"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="wrap the fidelity and ingest runs in `py-spy record` (collapsed stacks in DIR)",
    )
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = sorted(set(only) - set(SECTIONS))
    if bad:
        parser.error(f"--only: unknown section(s) {', '.join(bad)}; choose from {SECTIONS}")
    args.sections = [s for s in SECTIONS if s in only]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = Cores.choose()
    machine = machine_info()
    if cores.sim is not None:
        # This driver samples and sleeps; keep even that off the load generator's core.
        os.sched_setaffinity(0, {cores.sim})
    command = "python -m bench" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    results: dict[str, Any] = {
        "machine": machine,
        "placement": cores.describe(),
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llm-users-bench-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = scenarios.Context(
            cores=cores,
            workdir=workdir,
            quick=args.quick,
            profile_dir=Path(args.profile) if args.profile else None,
        )
        ctx.log(f"{cores.describe()}; work files in {workdir}")
        if "fidelity" in args.sections:
            results["fidelity"] = scenarios.fidelity(ctx)
        ingest_rows = []
        if "ingest" in args.sections:
            ingest_rows.append(scenarios.ingest(ctx, processes=1))
        if "distributed" in args.sections:
            ingest_rows.append(scenarios.ingest(ctx, processes=2))
            if not args.quick and cores.locust is not None:
                # Two workers only help with a second core: here it is the simulator's.
                shared = Cores(locust=None, sim=cores.sim)
                ingest_rows.append(
                    scenarios.ingest(ctx, processes=2, cores=shared, label="ingest-2p-unpinned")
                )
        if ingest_rows:
            results["ingest"] = ingest_rows
        if "memory" in args.sections:
            results["memory"] = scenarios.memory(ctx)
        if "aligned" in args.sections:
            results["load_before"] = os.getloadavg()
            results["aligned"] = aligned.aligned(ctx)
            results["load_after"] = os.getloadavg()
    results["elapsed_s"] = time.perf_counter() - t0

    lines = ["", "## Benchmark", ""]
    lines += report.machine_lines(machine, cores.describe(), command)
    if "fidelity" in results:
        lines += ["", *report.fidelity_lines(results["fidelity"])]
    if "ingest" in results:
        lines += ["", *report.ingest_lines(results["ingest"])]
    if "memory" in results:
        lines += ["", *report.memory_lines(results["memory"])]
    if "aligned" in results:
        lines += ["", *aligned.lines(results["aligned"])]
        before, after = results["load_before"], results["load_after"]
        lines.append(f"Load average (1/5/15 min) before {before}, after {after}.")
    lines += ["", f"Total bench time {results['elapsed_s']:.0f} s."]
    print("\n".join(lines), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
