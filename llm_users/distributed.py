"""Worker <-> master: message names, the aggregate payload, and the end-of-run handshake.

Workers send *deltas* (what finished since their last report) inside Locust's periodic
report, and one final delta from their ``test_stop``; the master adds them up. Deltas never
overlap, so nothing is counted twice and nothing is lost as long as the final one arrives.
"""

from __future__ import annotations

from typing import Any

from locust.runners import STATE_INIT, STATE_STOPPED, STATE_STOPPING, MasterRunner

from .aggregate import Aggregate

__all__ = ["Delta", "close_stop_window"]

# Message names share one namespace with every other plugin: prefixed.
MSG_DONE = "llm_users:done"  # worker -> master: users that finished --requests-per-user
MSG_FINAL = "llm_users:final"  # worker -> master: the last delta, from the worker's test_stop
MSG_ABORT = "llm_users:abort"  # worker -> master: every request failing, stop the test
MSG_SETUP = "llm_users:setup"  # master -> workers at test start: API key (Locust's option sync
#   blanks it), number of workers, each worker's share of --request-rate
MSG_RATE = "llm_users:rate"  # master -> workers: this worker's share of the open-loop rate
MSG_STEP = "llm_users:step"  # master -> workers: the sweep step now running
REPORT_KEY = "llm_users"  # key of the delta in Locust's periodic worker report


class Delta:
    """What a process finished since its last report: the whole, and per sweep step."""

    def __init__(self) -> None:
        self.total = Aggregate()
        self.steps: dict[int, Aggregate] = {}

    def step(self, index: int) -> Aggregate:
        agg = self.steps.get(index)
        if agg is None:
            agg = self.steps[index] = Aggregate()
        return agg

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total.to_dict(),
            "steps": {str(i): a.to_dict() for i, a in self.steps.items()},
        }

    def merge_dict(self, data: dict[str, Any]) -> None:
        self.total.merge(Aggregate.from_dict(data["total"]))
        for i, a in data.get("steps", {}).items():
            self.step(int(i)).merge(Aggregate.from_dict(a))


def close_stop_window(runner: MasterRunner) -> None:
    """Make every headless end path stop the workers (and get their data) before quitting.

    Locust's headless master fires ``test_stop`` before it tells the workers to stop and then
    listens for only 0.5 s more (runners.py, ``MasterRunner.quit``). ``stop()`` instead sends
    ``stop`` and waits for every worker's ``client_stopped``, which each worker sends after
    our final delta: so the summary covers every request.
    """
    original_quit = runner.quit

    def quit_after_stop() -> None:
        if runner.state not in (STATE_INIT, STATE_STOPPED, STATE_STOPPING):
            runner.stop()
        original_quit()

    runner.quit = quit_after_stop  # type: ignore[method-assign]
