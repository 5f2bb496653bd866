"""`make test`: the whole suite as two pytest processes side by side, one per core.

Most end-to-end tests wait on subprocesses (locust, the simulator, pip), so two at once keep
both cores busy and the suite takes about half as long. pytest-xdist cannot do this here: its
execnet channel dies under gevent's monkey-patching, which the suite needs. So the split is
by file, fixed below (a new test file joins the second group by default); each group has its
own temporary folder (pytest's numbered folders are not safe to share between processes).
Each group's output is printed when it ends; the exit code is non-zero when either failed.

    python scripts/run-tests.py [extra pytest arguments, given to both groups]
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# About half of the suite's time each (measured: unit + in-process ~170 s; end-to-end ~340 s).
FIRST = [
    "tests/unit",
    "tests/integration",
    "tests/e2e/test_install_nonroot.py",
    "tests/e2e/test_bad_input.py",
    "tests/e2e/test_tls.py",
    "tests/e2e/test_llm_page_workloads.py",
    "tests/e2e/test_conversation_config.py",
]
SECOND = ["tests/e2e", "tests/realserver", *(f"--ignore={p}" for p in FIRST if "e2e/" in p)]


def main(extra: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="llm-users-tests-") as tmp:
        procs = []
        for name, args in (("first", FIRST), ("second", SECOND)):
            log = open(Path(tmp) / f"{name}.log", "w+")  # noqa: SIM115 - read back below
            cmd = [sys.executable, "-m", "pytest", "-q", f"--basetemp={tmp}/{name}"]
            cmd += ["-p", "no:cacheprovider", *args, *extra]
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            procs.append((name, proc, log, time.monotonic()))
        print(f"run-tests: two pytest processes ({tmp}); each prints when it ends", flush=True)
        failed = []
        pending = list(procs)
        try:
            _wait(pending, failed)
        finally:
            for _, proc, _, _ in pending:  # interrupted: stop each group and what it started
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        if failed:
            print(f"\nrun-tests: FAILED in group(s) {', '.join(failed)}", flush=True)
            return 1
        print("\nrun-tests: both groups passed", flush=True)
        return 0


def _wait(pending: list, failed: list[str]) -> None:
    while pending:
        for item in list(pending):
            name, proc, log, t0 = item
            if proc.poll() is None:
                continue
            pending.remove(item)
            log.seek(0)
            print(
                f"\n===== group {name}: exit {proc.returncode}, "
                f"{time.monotonic() - t0:.0f} s =====",
                flush=True,
            )
            sys.stdout.write(log.read())
            sys.stdout.flush()
            log.close()
            if proc.returncode != 0:
                failed.append(name)
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
