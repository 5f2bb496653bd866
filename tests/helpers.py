"""Helpers for tests: real `locust` command lines, in-process Locust runs, sim statistics."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import gevent
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments
from locust.env import Environment
from locust.event import Events

from llm_users import LLMPlugin, LLMUser, add_arguments, setup
from llm_users.measure.per_request import RequestResult
from llm_users.record import RequestRecord

ROOT = Path(__file__).resolve().parents[1]
AS_LIMIT = 2 << 30  # a locust child's address space under attack: a runaway dies, not the machine


def bounded_child() -> None:
    """``preexec_fn`` of a locust child under attack: the address-space limit; and, where
    allowed, the lowest real-time priority (else nice -10), so that time a busy shared
    machine keeps the process off its CPUs is not counted as its loop's lag: the loop's own
    fairness is what is measured (loop lag p99 measured at a load of 6 on 2 cores: ~1 ms
    real-time, 2-30 ms at nice -10, ~30 ms at 0). The kernel caps real-time tasks at 95 % of
    the CPU time, and the caller's hard timeout ends a runaway."""
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    except (OSError, AttributeError):
        with contextlib.suppress(OSError):
            os.nice(-10)


def locust_cmd(*args: str) -> list[str]:
    """A real `locust` command line with the project's locustfile."""
    return [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), *args]


def run_locust(
    *args: str, timeout: float = 90, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **(env or {}))
    return subprocess.run(
        locust_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def run_headless(host: str, users: int, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """`locust --headless -u USERS -r USERS --host HOST ARGS...` (all users start at once)."""
    return run_locust("--headless", "-u", str(users), "-r", str(users), "--host", host, *args, **kw)


def parse_options(*args: str) -> Any:
    """Locust's own parser with the plugin's options, as the CLI would build them."""
    parser = get_empty_argument_parser()
    setup_parser_arguments(parser)
    add_arguments(parser)
    return parser.parse_args(["-f", str(ROOT / "locustfile.py"), "--headless", *args])


def run_in_process(
    host: str,
    *args: str,
    users: int = 4,
    timeout: float = 60,
    collect: list[tuple[RequestRecord, RequestResult]] | None = None,
    plugin_box: list[LLMPlugin] | None = None,
    spawn_rate: float | None = None,
) -> LLMPlugin:
    """A local (in-process) Locust run that ends by itself (--requests-per-user in args).

    With ``collect``, every finished request's raw record and figures are appended to it;
    with ``plugin_box``, the plugin, before the run starts (for a greenlet that acts on it);
    ``spawn_rate``: users started per second (default: all at once).
    """
    opts = parse_options(*args)
    env = Environment(user_classes=[LLMUser], events=Events(), host=host, parsed_options=opts)
    plugin = setup(env)
    if plugin_box is not None:
        plugin_box.append(plugin)
    if collect is not None:
        complete = plugin.complete

        def complete_and_keep(rec: RequestRecord, *more: Any) -> RequestResult:
            res = complete(rec, *more)
            collect.append((rec, res))
            return res

        plugin.complete = complete_and_keep  # type: ignore[method-assign]
    runner = env.create_local_runner()
    plugin.on_init()
    runner.start(users, spawn_rate=spawn_rate or users)
    with gevent.Timeout(timeout):
        runner.greenlet.join()
    return plugin


def server_ttft_ms(records: list[dict[str, Any]]) -> list[float]:
    return [(r["first_token_at"] - r["received_at"]) * 1000 for r in records if r["first_token_at"]]


def server_e2e_ms(records: list[dict[str, Any]]) -> list[float]:
    return [(r["done_at"] - r["received_at"]) * 1000 for r in records if r["done_at"]]


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs)


def lag_ms(summary: dict[str, Any], stat: str = "max") -> float:
    """The run's measured client loop lag (``max`` or ``p99``): how late any timing may be."""
    return float((summary.get("client_loop_lag_ms") or {}).get(stat) or 0.0)


def sim_lag_ms(sim: Any, stat: str = "max") -> float:
    """The simulator's own loop lag since its last reset: how late its stamps may be."""
    return float((sim.stats().get("loop_lag_ms") or {}).get(stat) or 0.0)


def server_itl_ms(records: list[dict[str, Any]]) -> float:
    """The server's mean gap between tokens: first to last token, over all gaps."""
    spans = [
        (r["last_token_at"] - r["first_token_at"], r["completion_tokens"] - 1)
        for r in records
        if r["first_token_at"] and r["completion_tokens"] > 1
    ]
    return 1000 * sum(t for t, _ in spans) / sum(n for _, n in spans)


def help_sections(text: str) -> dict[str, str]:
    """--help text cut at its section titles (unindented lines ending with ':')."""
    sections: dict[str, str] = {}
    title = ""
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            title = line[:-1]
            sections[title] = ""
        elif title:
            sections[title] += line + "\n"
    return sections
