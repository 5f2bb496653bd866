"""Keep every core busy (one spinning process per core, normal priority) until killed.

``python scripts/cpu-hog.py [--cores N] [--seconds S]``: for ``make test-stress``, which runs
the test suite on a machine with no idle CPU. Stops after S seconds anyway (default 1 hour).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import time


def spin(until: float) -> None:
    while time.monotonic() < until:
        for _ in range(100_000):
            pass


def _exit(*_: object) -> None:
    raise SystemExit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seconds", type=float, default=3600.0)
    args = ap.parse_args()
    until = time.monotonic() + args.seconds
    procs = [
        multiprocessing.Process(target=spin, args=(until,), daemon=True) for _ in range(args.cores)
    ]
    for p in procs:
        p.start()
    # SIGTERM (make's kill) ends the children with us: they are daemons of this process.
    signal.signal(signal.SIGTERM, _exit)
    try:
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()


if __name__ == "__main__":
    main()
