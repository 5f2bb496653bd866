"""A server killed mid-run: users back off (not a connection storm), and the summary says for
how long the server could not be reached."""

from __future__ import annotations

import time
from typing import Any

import gevent

from llm_users.measure.per_request import RequestResult
from llm_users.plugin.backoff import BACKOFF_FIRST_S, BACKOFF_MAX_S
from llm_users.record import RequestRecord
from llm_users.simulator import SimulatorProcess
from tests.helpers import run_in_process

USERS = 4
DOWN_S = 4.0  # how long the run goes on after the kill


def most_attempts(seconds: float) -> int:
    """The most connection attempts one user can make in ``seconds`` with the shortest draws
    of its backoff (half of each wait), the first at once."""
    n, t, wait = 1, 0.0, BACKOFF_FIRST_S
    while t + wait / 2 <= seconds:
        t, n, wait = t + wait / 2, n + 1, min(wait * 2, BACKOFF_MAX_S)
    return n


def test_a_dead_server_gets_few_attempts_and_the_outage_is_reported() -> None:
    sim = SimulatorProcess(ttft_ms=10, itl_ms=2, output_tokens=5).start()
    box: list[Any] = []
    pairs: list[tuple[RequestRecord, RequestResult]] = []
    times: dict[str, float] = {}

    def kill_then_stop() -> None:
        while sim.stats()["completed"] < 8:
            gevent.sleep(0.02)
        times["kill"] = time.time()
        sim.stop()
        gevent.sleep(DOWN_S)
        times["quit"] = time.time()
        box[0].env.runner.quit()

    killer = gevent.spawn(kill_then_stop)
    try:
        plugin = run_in_process(sim.url, "--requests-per-user", "100000", "--max-tokens", "5",
                                "--max-failing-seconds", "0", users=USERS, collect=pairs,
                                plugin_box=box)  # fmt: skip
        killer.get(timeout=5)
    finally:
        sim.stop()
    summary = plugin.last_summary
    assert summary is not None
    refused = [r for r, _ in pairs if r.failure in ("connect_error", "connection_reset")]
    # Without backoff: thousands (a refused connect takes ~0.1 ms).
    assert 0 < len(refused) <= USERS * most_attempts(DOWN_S)
    assert all(r.start_wall >= times["kill"] for r in refused)
    # Unreachable from the first refused request to the end of the run.
    first = min(r.start_wall for r in refused)
    assert abs(summary["unreachable_s"] - (times["quit"] - first)) < 0.5
    assert summary["unreachable_s"] <= time.time() - times["kill"]
    assert any("could not be reached for" in n for n in summary["notes"])
