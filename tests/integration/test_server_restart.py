"""The server process killed mid-run and restarted on the same port, under an in-process run.

The first life ends with every user waiting on a stalled request (so its records are exact
when read), then the simulator is SIGKILLed and a new one started on the same port. The
stalled requests fail by kind, the run goes on against the second life, and every request
the client counted is a record of one life or a connection that reached no server.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import gevent

from llm_users.measure.per_request import RequestResult
from llm_users.record import RequestRecord
from llm_users.simulator import SimulatorProcess
from tests.helpers import run_in_process

USERS, TOKENS = 2, 5
AFTER = 6  # requests the second life completes before the run is stopped
KNOBS: dict[str, Any] = {"ttft_ms": 10, "itl_ms": 2, "output_tokens": TOKENS}


def wait_until(what: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        gevent.sleep(0.02)


def test_server_killed_and_restarted_on_the_same_port():
    first = SimulatorProcess(**KNOBS).start()
    lives: list[list[dict[str, Any]]] = []
    second: list[SimulatorProcess] = []

    def kill_and_restart() -> None:
        wait_until(lambda: first.stats()["completed"] >= 4)
        first.configure(fault="stall", stall_ms=60_000)  # every new request hangs from now on

        def all_users_stalled() -> bool:
            stalled = [r for r in first.records() if r["fault"] == "stall"]
            return len(stalled) == USERS and first.stats()["in_flight"] == USERS

        wait_until(all_users_stalled)  # each user waits: nothing more can arrive
        lives.append(first.records())
        port = first.port
        os.kill(first.pid or 0, signal.SIGKILL)
        first.stop()
        second.append(SimulatorProcess(port=port, **KNOBS).start())
        # However long the restart took, the run ends only once the second life has served.
        wait_until(lambda: second[0].stats()["completed"] >= AFTER, timeout=60)
        env = box[0].env
        env.stop_timeout = 30  # the requests in flight finish: each counted once
        env.runner.quit()

    pairs: list[tuple[RequestRecord, RequestResult]] = []
    box: list[Any] = []
    chaos = gevent.spawn(kill_and_restart)
    try:
        plugin = run_in_process(
            first.url,
            "--stream",
            "--requests-per-user",
            "1000",  # the killer ends the run
            "--max-tokens",
            "50",
            "--think-time",
            "0.3",  # a request sent while no server listens is counted, and the next one waits
            "--max-failing-seconds",
            "0",
            users=USERS,
            collect=pairs,
            plugin_box=box,
        )
        chaos.get(timeout=5)  # re-raises a failure of the killer itself
        (sim,) = second
        while sim.stats()["in_flight"]:
            time.sleep(0.02)
        lives.append(sim.records())
    finally:
        chaos.kill()
        first.stop()
        for sim in second:
            sim.stop()

    s = plugin.last_summary
    assert s is not None
    total = len(pairs)
    # The run went on to the end; each request counted once.
    assert not plugin.env.runner.exceptions
    assert s["requests"] + s["failures"] == total
    # The stalled requests in flight at the kill failed, by kind; only a request sent while no
    # server listened may fail otherwise.
    by_kind = dict(s["failures_by_kind"])
    unreached = by_kind.pop("connect_error", 0)
    assert by_kind == {"connection_dropped": USERS}
    stalled = [r for r in lives[0] if r["fault"] == "stall"] if lives else []
    assert len(stalled) == USERS and not any(r["completed"] for r in stalled)
    # Nothing counted twice, nothing lost: the client's count is the records of both lives.
    first_life, second_life = lives
    assert len(first_life) + len(second_life) == total - unreached
    completed = [r for r in first_life + second_life if r["completed"]]
    assert len(completed) == s["requests"]
    assert sum(1 for r in second_life if r["completed"]) == len(second_life) >= AFTER
    # The figures resumed after the restart: every success, from either life, is in them.
    assert s["ttft_ms"]["count"] == s["e2e_ms"]["count"] == s["requests"]
    assert s["itl_ms"]["count"] == s["requests"] * (TOKENS - 1)
    assert s["output_tokens"] == s["requests"] * TOKENS
    entry = plugin.env.stats.get("/v1/chat/completions", "POST")
    assert entry.num_requests == total and entry.num_failures == s["failures"]
