"""Run control: when a test ends by itself, and how load changes while it runs.

Requests per user (the test ends when every user has sent its share), the failure watchdog
(stop a run whose every request fails), sweeps of users or rates, and the open-loop arrival
schedule. On a worker, what concerns the whole test is sent to the master (``to_master``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import STATE_SPAWNING

from ..measure.per_request import RequestResult
from ..options.settings import Settings
from ..role import Role, rate_per_worker
from ..workload.arrivals import ArrivalSchedule, SweepController
from ..workload.trace import TraceSchedule
from .search import CapacitySearch, warmup_step

__all__ = ["RunControl", "is_headless"]

log = logging.getLogger("llm_users")


def is_headless(env: Environment) -> bool:
    """No web UI to come back to: a test that ends quits the process."""
    return bool(getattr(env.parsed_options, "headless", False)) or env.web_ui is None


class RunControl:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.role = Role()
        self.settings: Settings | None = None
        self.running = False
        self.users_done = 0
        self.peak_users = 0
        # The steady window (wall clock): from when the users first all ran (Locust's
        # spawning_complete) until the first of them stopped, or the test stopped.
        self.steady_window: tuple[float | None, float | None] = (None, None)
        self.step = 0  # the sweep step now running: it owns the requests that start in it
        self.abort_reason: str | None = None
        # Stopped from outside (Ctrl-C, SIGTERM) before its end: the requests then in flight
        # (None where unknown: a master's are on its workers).
        self.interrupted = False
        self.dropped_in_flight: int | None = None
        self.generator_cpu_share: float | None = None  # this process's CPU / wall (looplag)
        self.schedule: ArrivalSchedule | TraceSchedule | None = None  # open loop
        self.sweep: SweepController | None = None
        self.search: CapacitySearch | None = None  # --search: drives self.sweep's steps
        self.step_aggregate: Callable[[int], Any] = lambda _i: None
        self.rate_share: float | None = None  # worker: its share of --request-rate
        self.started_at_unix: float | None = None  # wall clock, a label for the summary only
        self._failing_since: float | None = None
        # Set by the wiring: worker -> master messages; master -> workers; a step's requests.
        self.to_master: Callable[[str, dict[str, Any]], None] | None = None
        self.to_workers: Callable[[str, dict[str, Any]], None] | None = None
        self.step_requests: Callable[[int], int] = lambda _i: 0
        self.on_end: Callable[[], None] = lambda: None
        env.events.spawning_complete.add_listener(
            lambda user_count, **_kw: self.spawned(user_count)
        )

    @property
    def runner(self) -> Any:
        return self.env.runner

    def start(self, settings: Settings, role: Role, prompts: Any = None) -> None:
        """A test starts: fresh counters, the open-loop schedule, the sweep (not on workers).

        A prompt source with its own times (a trace: ``prompts.schedule()``) is the schedule.
        """
        self.settings, self.role = settings, role
        self.started_at_unix = time.time()
        self.interrupted, self.dropped_in_flight = False, None
        self.users_done = self.peak_users = self.step = 0
        self.steady_window = (None, None)
        self.abort_reason = None
        self._failing_since = None
        self.schedule = None
        timed = getattr(prompts, "schedule", None)
        if timed is not None and role.sends_requests:
            self.schedule = timed()
        elif settings.request_rate and role.sends_requests:
            rate = self.rate_share if role.is_worker and self.rate_share else settings.request_rate
            seed = settings.seed_for("arrivals", role.index)
            self.schedule = ArrivalSchedule(rate, settings.arrivals, seed)
        self.search = None
        if settings.search != "off" and not role.is_worker:
            self.search = search = CapacitySearch(settings, lambda i: self.step_aggregate(i))
            # Users started before the first probe sets its load (the web form's user count)
            # send warm-up requests: never the first probe's figures.
            self.step = warmup_step(0)
            self.sweep = SweepController(
                (),
                float("inf"),  # a probe ends when decided (or at --search-probe-time)
                self._search_apply,
                search.decided,
                self._search_done,
                next_value=search.next_load,
            )
            self.sweep.start()
        elif settings.sweep and not role.is_worker:
            self.sweep = SweepController(
                settings.sweep,
                settings.sweep_step_time,
                self._sweep_apply,
                self._sweep_step_finished,
                self._sweep_done,
            )
            self.sweep.start()
        self.running = True

    @staticmethod
    def initial_users(opts: Any, settings: Settings) -> None:
        """Locust spawns -u users itself: a user sweep starts at its first step's count."""
        if settings.sweep and settings.sweep_of == "users" and opts is not None:
            opts.num_users = int(settings.sweep[0])
            opts.spawn_rate = max(float(getattr(opts, "spawn_rate", 0) or 0), settings.sweep[0])
        if settings.search == "users" and opts is not None:
            opts.num_users = 1  # the search's first probe

    def stop(self) -> None:
        self.running = False
        self._steady_ends()
        if self.sweep is not None:
            self.sweep.stop()
        if self.search is not None:
            self.search.stop()

    # -- requests per user ----------------------------------------------------------------
    def user_done(self) -> None:
        """A user sent its --requests-per-user: when all have, the test ends by itself."""
        self._steady_ends()  # this process's load is below its target from now on
        if self.to_master is not None:
            self.to_master("done", {"n": 1})
            return
        self.count_done(1)

    def count_done(self, n: int) -> None:
        self.users_done += n
        target = getattr(self.runner, "target_user_count", 0) or 0
        if target and self.users_done >= target and self.running:
            trace = self.settings is not None and self.settings.trace
            self.end_test(
                "the trace was replayed" if trace else "every user sent its --requests-per-user"
            )

    def spawned(self, user_count: int) -> None:
        self.peak_users = max(self.peak_users, user_count)
        if self.steady_window[0] is None:
            self.steady_window = (time.time(), None)

    def _steady_ends(self) -> None:
        since, until = self.steady_window
        if since is not None and until is None:
            self.steady_window = (since, time.time())

    # -- failure watchdog -----------------------------------------------------------------
    def watch(self, res: RequestResult) -> None:
        """Stop a run whose every request has failed for --max-failing-seconds."""
        if res.cancelled:  # hung up on purpose: says nothing of the server
            return
        if res.ok:
            self._failing_since = None
            return
        s = self.settings
        if s is None or not s.max_failing_seconds or not self.running:
            return
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since >= s.max_failing_seconds:
            reason = (
                f"every request failed for {s.max_failing_seconds:g} s (last: {res.failure}: "
                f"{res.message}); the figures would mean nothing. --max-failing-seconds 0 "
                "keeps going"
            )
            if self.to_master is not None:
                self.to_master("abort", {"reason": reason})
                self._failing_since = None
            else:
                self.abort(reason)

    def abort(self, reason: str) -> None:
        if self.abort_reason is None:
            self.abort_reason = reason
            log.error("llm-users: stopping the test: %s", reason)
            self.end_test(reason)

    def end_test(self, reason: str) -> None:
        log.info("llm-users: %s: stopping the test", reason)
        self.running = False
        self.on_end()  # e.g. freeze the loop-lag monitor: the stop blocks the loop
        # Never stop or quit from inside a user's task: do it in a greenlet of its own.
        gevent.spawn(self.runner.quit if is_headless(self.env) else self.runner.stop)

    # -- open loop and sweeps -------------------------------------------------------------
    def set_rate(self, rate: float) -> None:
        """This process's share of the open-loop rate (a worker's, from the master)."""
        self.rate_share = rate
        if self.schedule is not None:
            self.schedule.set_rate(rate)

    def _sweep_apply(self, index: int, value: float) -> None:
        s = self.settings
        assert s is not None
        self._wait_spawned()
        self._set_step(index)
        self._set_load(s.sweep_of, value)

    def _wait_spawned(self) -> None:
        while self.runner.state == STATE_SPAWNING:  # let a spawn finish first
            gevent.sleep(0.05)

    def _set_step(self, index: int) -> None:
        """Requests that start from now on belong to step ``index`` (on every worker too)."""
        self.step = index
        if self.to_workers is not None:
            self.to_workers("step", {"index": index})

    def _set_load(self, of: str, value: float) -> None:
        """``value`` users, or requests/s (split exactly between the workers)."""
        runner = self.runner
        if of == "rate":
            if self.to_workers is not None:
                self.to_workers("rate", {"rate": rate_per_worker(value, runner.worker_count)})
            elif self.schedule is not None:
                self.schedule.set_rate(value)
        elif runner.target_user_count != int(value):
            # at once, both ways: Locust stops users at the spawn rate too (8 -> 1 at 1/s
            # would leave 7 users sending into the next step for 7 s)
            now = float(runner.user_count or 0)
            runner.start(int(value), spawn_rate=max(value, now, 1.0))

    def _sweep_step_finished(self, index: int) -> bool:
        s = self.settings
        if s is None or not s.sweep_step_requests:
            return False
        return self.step_requests(index) >= s.sweep_step_requests

    def _search_apply(self, index: int, value: float) -> None:
        """Probe ``index``: its load, then its warm-up (its requests in a step of their own),
        then measuring starts."""
        s, search = self.settings, self.search
        assert s is not None and search is not None
        self._wait_spawned()
        self._set_step(warmup_step(index))
        started = time.monotonic()
        self._set_load(s.search, value)
        self._wait_spawned()
        gevent.sleep(s.search_warmup)
        self._set_step(index)
        search.begin(index, value, time.monotonic() - started)

    def _search_done(self) -> None:
        if self.running:
            self.end_test("the capacity search ended")

    def _sweep_done(self) -> None:
        if self.running:
            self.end_test("the sweep's last step ended")
