"""Worker <-> master: the messages, each side's part, and the end-of-run handshake.

Workers send *deltas* (a :class:`~llm_users.measure.tally.Tally` of what finished since their last
report) inside Locust's periodic report, and one final delta from their ``test_stop``; the
master adds them up. Deltas never overlap, so nothing is counted twice and nothing is lost
as long as the final one arrives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from locust.rpc import Message
from locust.runners import STATE_INIT, STATE_STOPPED, STATE_STOPPING, MasterRunner

from ..measure.tally import Tally
from ..role import rate_per_worker
from .control import RunControl

__all__ = ["MasterLink", "WorkerLink", "close_stop_window"]

log = logging.getLogger("llm_users")

# Message names share one namespace with every other plugin: prefixed.
PREFIX = "llm_users:"
MSG_DONE = PREFIX + "done"  # worker -> master: users that finished --requests-per-user
MSG_FINAL = PREFIX + "final"  # worker -> master: the last delta, from the worker's test_stop
MSG_ABORT = PREFIX + "abort"  # worker -> master: every request failing, stop the test
MSG_SETUP = PREFIX + "setup"  # master -> workers at test start: API key (Locust's option sync
#   blanks it), the preflight's model, number of workers, each worker's share of the rate
MSG_RATE = PREFIX + "rate"  # master -> workers: this worker's share of the open-loop rate
MSG_STEP = PREFIX + "step"  # master -> workers: the sweep step now running
REPORT_KEY = "llm_users"  # key of the delta in Locust's periodic worker report


class WorkerLink:
    """A worker's side: takes the master's setup, rate and step; sends deltas and the final one."""

    def __init__(self, runner: Any, control: RunControl, take_delta: Callable[[], Tally]) -> None:
        self.runner = runner
        self.control = control
        self.take_delta = take_delta
        self.api_key = ""  # the master's (Locust's option sync blanks the secret)
        self.model = ""  # the model the master's preflight resolved
        self.workers = 1
        control.to_master = lambda name, data: runner.send_message(PREFIX + name, data)
        runner.register_message(MSG_SETUP, self._on_setup)
        runner.register_message(MSG_RATE, self._on_rate)
        runner.register_message(MSG_STEP, self._on_step)
        runner.environment.events.report_to_master.add_listener(
            lambda data, **_kw: self.report(data)
        )

    def _on_setup(self, environment: Any, msg: Any, **_kw: Any) -> None:
        data = msg.data or {}
        self.api_key = str(data.get("api_key") or "")
        self.model = str(data.get("model") or "")
        self.workers = max(1, int(data.get("workers") or 1))
        self.control.rate_share = float(data.get("rate") or 0.0) or None

    def _on_rate(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self.control.set_rate(float(msg.data["rate"]))

    def _on_step(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self.control.step = int(msg.data["index"])

    def report(self, data: dict[str, Any]) -> None:
        """Locust's periodic report: add our delta."""
        data[REPORT_KEY] = self.take_delta().to_dict()

    def send_final(self, error: Exception | None = None) -> None:
        """The last delta; ``error`` (a records file this worker could not write) is logged."""
        if error is not None:
            log.error("llm-users: %s", error)
        self.runner.send_message(MSG_FINAL, self.take_delta().to_dict())


class MasterLink:
    """The master's side: merges the workers' deltas, knows which sent their final one."""

    def __init__(
        self, runner: MasterRunner, control: RunControl, tally: Callable[[], Tally]
    ) -> None:
        self.runner = runner
        self.control = control
        self.tally = tally
        self.reports: dict[str, dict[str, Any]] = {}  # client id -> {final, last}
        control.to_workers = lambda name, data: runner.send_message(PREFIX + name, data)
        runner.register_message(MSG_DONE, self._on_done)
        runner.register_message(MSG_FINAL, self._on_final)
        runner.register_message(MSG_ABORT, self._on_abort)
        runner.environment.events.worker_report.add_listener(self.on_worker_report)
        close_stop_window(runner)

    def _on_done(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self.control.count_done(int(msg.data.get("n", 1)))

    def _on_final(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self.merge(msg.node_id, msg.data, final=True)

    def _on_abort(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self.control.abort(f"{msg.data.get('reason')} (worker {msg.node_id})")

    def start(self, api_key: str, model: str, rate: float) -> None:
        """Sent before the spawn messages (test_start fires first): workers have it in time."""
        # Every worker in the test is listed now: one killed before its first report is
        # missed, not forgotten.
        self.reports = {c.id: {"final": False, "last": None} for c in self.runner.clients.all}
        workers = max(1, self.runner.worker_count)
        share = rate_per_worker(rate, workers)
        data = {"api_key": api_key, "model": model, "workers": workers, "rate": share}
        self.runner.send_message(MSG_SETUP, data)

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        payload = data.get(REPORT_KEY)
        if payload is not None:
            self.merge(client_id, payload, final=False)

    def merge(self, client_id: str, payload: dict[str, Any], final: bool) -> None:
        self.tally().merge(Tally.from_dict(payload))
        state = self.reports.setdefault(client_id, {"final": False, "last": None})
        state["last"] = time.time()
        state["final"] = state["final"] or final

    def summary(self) -> tuple[dict[str, Any], list[str]]:
        """Per worker: did its final report arrive; a note for each that did not."""
        out: dict[str, Any] = {}
        notes: list[str] = []
        for cid, st in sorted(self.reports.items()):
            out[cid] = {"final_report": st["final"], "last_report_at": st["last"]}
            if not st["final"]:
                if st["last"]:
                    when = time.strftime("%H:%M:%S", time.localtime(st["last"]))
                    missing = f"its data after {when} is missing"
                else:
                    missing = "none of its data reached the master"
                notes.append(f"worker {cid} sent no final report: {missing}")
        return out, notes


def close_stop_window(runner: MasterRunner) -> None:
    """Make every headless end path stop the workers (and get their data) before quitting.

    Locust's headless master fires ``test_stop`` before it tells the workers to stop and then
    listens for only 0.5 s more (runners.py, ``MasterRunner.quit``). ``stop()`` instead sends
    ``stop`` and waits for every worker's ``client_stopped``, which each worker sends after
    our final delta: so the summary covers every request.

    A worker's ``client_stopped`` removes it from ``runner.clients``, where ``quit`` finds
    the workers to tell: those are told here, or they would wait 60 s for a dead master's
    heartbeat. (A worker reads ``quit`` after its ``--stop-timeout`` pause.)
    """
    original_quit = runner.quit

    def quit_after_stop() -> None:
        ids = [c.id for c in runner.clients.all]
        if runner.state not in (STATE_INIT, STATE_STOPPED, STATE_STOPPING):
            runner.stop()
        for cid in ids:
            if cid not in runner.clients:  # stopped and forgotten: quit() would skip it
                runner.server.send_to_client(Message("quit", None, cid))
        original_quit()

    runner.quit = quit_after_stop  # type: ignore[method-assign]
