"""Running things: the simulator, pinned locust subprocesses, RSS/CPU sampling, statistics."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "locustfile.py"  # the project's own
TAGGED_LOCUSTFILE = ROOT / "bench" / "locustfile.py"  # the same plugin, requests tagged


def simulator_class() -> Any:
    """``SimulatorProcess`` without running ``llm_users/__init__`` (locust -> gevent patching).

    The simulator's process wrapper is standard library only; a bare namespace module stands
    for the package.
    """
    if "llm_users" not in sys.modules:
        stub = types.ModuleType("llm_users")
        stub.__path__ = [str(ROOT / "llm_users")]
        sys.modules["llm_users"] = stub
    from llm_users.simulator.process import SimulatorProcess

    return SimulatorProcess


# -- the machine ---------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine_info() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "locust": _version("locust"),
        "gevent": _version("gevent"),
        "geventhttpclient": _version("geventhttpclient"),
        "orjson": _version("orjson"),
        "aiohttp": _version("aiohttp"),
    }


@dataclass(frozen=True)
class Cores:
    """Where the load generator and the simulator run (None: not pinned)."""

    locust: str | None  # taskset -c list, e.g. "0"
    sim: int | None

    @classmethod
    def choose(cls) -> Cores:
        usable = sorted(os.sched_getaffinity(0))
        if len(usable) >= 2 and shutil.which("taskset"):
            return cls(locust=str(usable[0]), sim=usable[1])
        return cls(locust=None, sim=None)

    def describe(self) -> str:
        if self.locust is None:
            return "not pinned (fewer than 2 usable cores, or no taskset)"
        return f"locust on CPU {self.locust} (taskset), simulator on CPU {self.sim}"


# -- clocks --------------------------------------------------------------------------------
def wall_minus_perf() -> float:
    """time.time() - time.perf_counter(), from the tightest of a few brackets.

    perf_counter is CLOCK_MONOTONIC, shared by every process on the machine; with this
    offset a client record's ``start_wall`` maps onto the simulator's perf_counter times.
    """
    best = (math.inf, 0.0)
    for _ in range(50):
        a = time.perf_counter()
        w = time.time()
        b = time.perf_counter()
        if b - a < best[0]:
            best = (b - a, w - (a + b) / 2)
    return best[1]


# -- statistics ----------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float | None:
    """Nearest rank, as the plugin's histograms define it."""
    if not values:
        return None
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


# -- /proc sampling ------------------------------------------------------------------------
def proc_status_kib(pid: int, keys: Iterable[str] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in keys:
                out[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def children_of(pid: int) -> list[int]:
    """Direct and indirect children (from /proc; psutil is not required)."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pid: int) -> float | None:
    """user + system CPU seconds of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, ValueError, IndexError):
        return None


# -- other load on the machine ---------------------------------------------------------------
def cpu_busy_s() -> dict[str, float]:
    """Busy seconds (not idle, not iowait) per CPU ("cpu0", ...) and steal, from /proc/stat."""
    out: dict[str, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            name, *vals = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            v = [int(x) for x in vals]
            out[name] = (sum(v[:8]) - v[3] - v[4]) / ticks  # user..steal minus idle, iowait
            out[name + "_steal"] = v[7] / ticks if len(v) > 7 else 0.0
    except (OSError, ValueError):
        pass
    return out


def busy_pct(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    return {k: 100.0 * (after[k] - before.get(k, 0.0)) / wall_s for k in after if wall_s > 0}


def cpu_between(samples: list[dict[str, Any]], t0: float, t1: float) -> float | None:
    """CPU seconds a sampled process tree used between perf_counter times t0 and t1.

    Linear between samples; the simulator's timestamps are on the same clock
    (CLOCK_MONOTONIC), so its window can be used directly.
    """
    pts = [(s["perf"], s["cpu_s"]) for s in samples if "perf" in s]
    if len(pts) < 2 or t0 < pts[0][0] or t1 > pts[-1][0]:
        return None

    def at(t: float) -> float:
        for (ta, ca), (tb, cb) in zip(pts, pts[1:], strict=False):
            if ta <= t <= tb:
                return ca + (cb - ca) * (t - ta) / (tb - ta) if tb > ta else ca
        return pts[-1][1]

    return at(t1) - at(t0)


def wait_quiet(
    cpus: Iterable[int],
    limit_pct: float = 15.0,
    max_wait_s: float = 60.0,
    log: Callable[[str], None] | None = None,
) -> float:
    """Wait (up to ``max_wait_s``) for ``cpus`` to be idle; returns their busy % when done.

    Other processes on the load generator's core delay its reads as surely as its own work
    does; the bench measures on a quiet machine, or says it could not.
    """
    deadline = time.monotonic() + max_wait_s
    told = False
    while True:
        a = cpu_busy_s()
        time.sleep(0.5)
        b = cpu_busy_s()
        pct = max((busy_pct(a, b, 0.5).get(f"cpu{c}", 0.0) for c in cpus), default=0.0)
        if pct <= limit_pct or time.monotonic() > deadline:
            if told and log is not None:
                log(f"machine {'quiet' if pct <= limit_pct else 'still busy'} ({pct:.0f} %)")
            return pct
        if not told and log is not None:
            log(f"other processes keep a core {pct:.0f} % busy: waiting up to {max_wait_s:.0f} s")
            told = True


# -- locust --------------------------------------------------------------------------------
@dataclass
class LocustRun:
    cmd: list[str]
    returncode: int | None = None
    elapsed_s: float = 0.0
    cpu_s: float | None = None  # locust and its waited-for children (rusage)
    timed_out: bool = False
    stdout: str = ""
    stderr: str = ""
    summary: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_kib: int = 0  # VmHWM of the main locust process
    child_peak_rss_kib: dict[int, int] = field(default_factory=dict)
    child_cpu_s: dict[int, float] = field(default_factory=dict)  # last seen, per child
    main_cpu_s: float | None = None  # last seen
    samples: list[dict[str, Any]] = field(default_factory=list)
    cpu_busy_pct: dict[str, float] = field(default_factory=dict)  # every process, per CPU

    def tail(self, n: int = 1500) -> str:
        return (self.stdout[-n:] + "\n" + self.stderr[-n:]).strip()


def locust_command(args: list[str], cores: Cores, locustfile: Path = LOCUSTFILE) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", *args]
    if cores.locust is not None:
        cmd = ["taskset", "-c", cores.locust, *cmd]
    return cmd


def run_locust(
    args: list[str],
    cores: Cores,
    workdir: Path,
    *,
    timeout: float,
    sample_every: float = 0.25,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
    wrap: list[str] | None = None,
    locustfile: Path = LOCUSTFILE,
    env: dict[str, str] | None = None,
) -> LocustRun:
    """Run ``locust -f locustfile.py --headless ARGS`` to its end, sampling memory meanwhile.

    ``--summary-json`` and ``--records`` are added (in ``workdir``) and read back.
    ``wrap`` prefixes the command (a profiler, e.g. ``py-spy record ... --``).
    """
    summary_path = workdir / "summary.json"
    records_path = workdir / "records.jsonl"
    for old in [summary_path, *workdir.glob("records.jsonl*")]:
        old.unlink(missing_ok=True)
    full = [*args, "--summary-json", str(summary_path), "--records", str(records_path)]
    cmd = locust_command(full, cores, locustfile)
    if wrap:
        cmd = [*wrap, *cmd]
    run = LocustRun(cmd=cmd)
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        **(env or {}),
    )
    out_f = open(workdir / "locust.stdout", "w+")  # noqa: SIM115 - read back below
    err_f = open(workdir / "locust.stderr", "w+")  # noqa: SIM115
    busy0 = cpu_busy_s()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out_f,
        stderr=err_f,
        start_new_session=True,
    )
    # With a wrapper the locust process is the wrapper's child: find it once it exists.
    target = proc.pid
    rusage = None
    exited_at = None
    try:
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                exited_at = time.perf_counter()
                proc.returncode = os.waitstatus_to_exitcode(status)
                rusage = ru
                break
            now = time.perf_counter() - t0
            if now > timeout:
                run.timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, rusage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if wrap and target == proc.pid:
                kids = children_of(proc.pid)
                target = next((k for k in kids if "locust" in _cmdline(k)), proc.pid)
            st = proc_status_kib(target)
            kids_rss = {k: proc_status_kib(k).get("VmHWM", 0) for k in children_of(target)}
            for k, v in kids_rss.items():
                run.child_peak_rss_kib[k] = max(run.child_peak_rss_kib.get(k, 0), v)
                cpu = cpu_seconds(k)
                if cpu is not None:
                    run.child_cpu_s[k] = cpu
            run.main_cpu_s = cpu_seconds(target) or run.main_cpu_s
            if st:
                run.peak_rss_kib = max(run.peak_rss_kib, st.get("VmHWM", 0))
                tree_cpu = (run.main_cpu_s or 0.0) + sum(run.child_cpu_s.values())
                sample = {
                    "t": now,
                    "perf": time.perf_counter(),
                    "rss_kib": st.get("VmRSS"),
                    "hwm_kib": st.get("VmHWM"),
                    "cpu_s": tree_cpu,
                }
                if on_sample is not None:
                    on_sample(sample)
                run.samples.append(sample)
            time.sleep(sample_every)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    run.elapsed_s = time.perf_counter() - t0
    run.cpu_busy_pct = busy_pct(busy0, cpu_busy_s(), run.elapsed_s)
    run.returncode = proc.returncode
    if rusage is not None and not wrap:
        # rusage counts the children locust reaped; the others only by their last sample.
        # Whether or not locust reaps its forked workers, the larger figure is the complete one.
        sampled = (run.main_cpu_s or 0.0) + sum(run.child_cpu_s.values())
        run.cpu_s = max(rusage.ru_utime + rusage.ru_stime, sampled)
        if exited_at is not None:
            # A last point at the exit (seen within one sampling interval of it), so a window
            # that ends after the last periodic sample still has CPU figures.
            run.samples.append({"t": exited_at - t0, "perf": exited_at, "cpu_s": run.cpu_s})
    out_f.seek(0)
    err_f.seek(0)
    run.stdout, run.stderr = out_f.read(), err_f.read()
    out_f.close()
    err_f.close()
    if summary_path.is_file():
        run.summary = json.loads(summary_path.read_text())
    for path in sorted(workdir.glob("records.jsonl*")):
        run.records += [json.loads(line) for line in path.read_text().splitlines() if line]
    return run


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
