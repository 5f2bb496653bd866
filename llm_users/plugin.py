"""Wires the plugin onto a Locust Environment: listeners onto Locust's events, by role.

One :class:`LLMPlugin` per Environment (``setup(env)``), no module-level state. The work is
done by the parts it wires: the run context (context.py), the result sink (sink.py), run
control (control.py), the worker or master link (distributed.py), the report (report.py)
and the web UI's read-only view (live.py, web.py).
"""

from __future__ import annotations

import itertools
import logging
import random
import sys
from typing import Any

from locust.env import Environment
from locust.event import EventHook
from locust.runners import MasterRunner, WorkerRunner

from .context import Role, RunContext, build_context, startup_key
from .control import RunControl
from .distributed import MasterLink, WorkerLink
from .errors import ConfigError, LLMUsersError
from .live import LiveView
from .looplag import LoopLagMonitor
from .options import Settings
from .report import exit_code, print_and_write, run_info
from .sink import ResultSink
from .summary import RunInfo
from .tally import Tally

__all__ = ["LLMPlugin", "plugin_of", "register", "setup"]

log = logging.getLogger("llm_users")


def register(events: Any) -> None:
    """For a locustfile: add the options and set the plugin up on every Environment."""
    from .options import add_arguments

    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(lambda environment, **_kw: setup(environment).on_init())


def setup(environment: Environment) -> LLMPlugin:
    """Attach (once) and return the plugin of this Environment."""
    plugin = getattr(environment, "llm_plugin", None)
    if plugin is None:
        plugin = LLMPlugin(environment)
        environment.llm_plugin = plugin  # type: ignore[attr-defined]
    return plugin


def plugin_of(environment: Environment) -> LLMPlugin:
    plugin = getattr(environment, "llm_plugin", None)
    if plugin is None:
        raise LLMUsersError("llm_users is not set up: call llm_users.register(events) first")
    return plugin


class LLMPlugin:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.ctx: RunContext | None = None
        self.lag = LoopLagMonitor()
        self.sink = ResultSink(env)
        self.complete = self.sink.complete  # what a user calls with each finished record
        self.control = RunControl(env, lambda: self.headless)
        self.control.on_end = self.lag.freeze  # the stop itself blocks the loop: not measured
        self.control.step_requests = self._step_requests
        self.sink.observers.append(self.control.watch)
        self.worker: WorkerLink | None = None
        self.master: MasterLink | None = None
        self.last_summary: dict[str, Any] | None = None
        self.output_errors: list[str] = []  # output files that could not be written, one line each
        self._startup_key = ""  # master/local: the key of the command line or environment
        self._init_done = False
        self._users_made = itertools.count()  # numbers this process's users, for their seeds
        ev = env.events
        for name in ("llm_first_token", "llm_follow_tokens", "llm_request"):
            if not hasattr(ev, name):
                setattr(ev, name, EventHook())
        ev.test_start.add_listener(self._on_test_start)
        ev.test_stop.add_listener(self._on_test_stop)
        ev.test_stopping.add_listener(lambda **_kw: self.lag.freeze())
        ev.quitting.add_listener(self._on_quitting)
        ev.spawning_complete.add_listener(
            lambda user_count, **_kw: self.control.spawned(user_count)
        )
        ev.reset_stats.add_listener(self._on_reset_stats)
        ev.report_to_master.add_listener(
            lambda client_id, data, **_kw: self.worker and self.worker.report(data)
        )
        ev.worker_report.add_listener(
            lambda client_id, data, **_kw: (
                self.master and self.master.on_worker_report(client_id, data)
            )
        )

    # -- what users and tests read ---------------------------------------------------------
    @property
    def settings(self) -> Settings | None:
        return self.ctx.settings if self.ctx is not None else None

    @property
    def users_done(self) -> int:
        return self.control.users_done

    def user_rng(self, purpose: str) -> random.Random:
        """A new user's own random stream, repeatable with --seed (the n-th user made in this
        process, and the worker's index)."""
        n, s = next(self._users_made), self.settings
        return random.Random(s.seed_for(f"{purpose}/user{n}", self.role.index) if s else None)

    @property
    def role(self) -> Role:
        runner = self.env.runner
        if isinstance(runner, WorkerRunner):
            workers = self.worker.workers if self.worker is not None else 1
            return Role("worker", int(getattr(runner, "worker_index", 0)), workers)
        return Role("master" if isinstance(runner, MasterRunner) else "local")

    @property
    def headless(self) -> bool:
        opts = self.env.parsed_options
        return (
            bool(opts is not None and getattr(opts, "headless", False)) or self.env.web_ui is None
        )

    # -- start-up ----------------------------------------------------------------------------
    def on_init(self) -> None:
        """Validate the command line before anything starts (exit 2 with one line if bad)."""
        if self._init_done:
            return
        self._init_done = True
        runner = self.env.runner
        if isinstance(runner, MasterRunner):
            self.master = MasterLink(runner, self.control, lambda: self.sink.tally)
        if isinstance(runner, WorkerRunner):
            # Workers get their options from the master, with the first spawn.
            self.worker = WorkerLink(runner, self.control, self._take_delta)
            return
        opts = self.env.parsed_options
        if opts is None:
            return
        # The web form always posts the (masked, empty) key field: keep the start-up key.
        self._startup_key = startup_key(opts)
        try:
            self.ctx = self._build(check_server=self.headless)
            s = self.ctx.settings
            if s.sweep and s.sweep_of == "users":
                # Locust spawns -u users itself: a user sweep starts at its first step's count.
                opts.num_users = int(s.sweep[0])
                opts.spawn_rate = max(float(getattr(opts, "spawn_rate", 0) or 0), s.sweep[0])
        except ConfigError as exc:
            if self.headless:
                sys.stderr.write(f"llm-users: error: {exc}\n")
                sys.stderr.flush()
                sys.exit(2)
            log.error("llm-users: %s (fix it in the start form)", exc)
        if self.env.web_ui is not None:
            from .web import install_web_ui

            install_web_ui(self.env, self._live_view())

    def _build(self, check_server: bool) -> RunContext:
        w = self.worker
        return build_context(
            self.env.parsed_options,
            self.env.host,
            self.role,
            api_key=w.api_key if w is not None else self._startup_key,
            model=w.model if w is not None else "",
            check_server=check_server,
            previous=self.ctx,
        )

    def _on_test_start(self, environment: Environment, **_kw: Any) -> None:
        self.sink.take()
        self.last_summary = None
        try:
            # Settings are resolved once: again only where options can change since (the web
            # form) or first arrive (a worker, with the spawn message).
            if self.ctx is None or self.worker is not None or not self.headless:
                self.ctx = self._build(check_server=not self.headless or self.ctx is None)
        except ConfigError as exc:
            log.error("llm-users: %s", exc)
            self.control.end_test(str(exc))
            return
        s, role = self.ctx.settings, self.role
        self.sink.configure(s, self.ctx.counter, str(role.index) if role.is_worker else None)
        if self.master is not None:
            self.master.start(s.api_key, s.model, s.request_rate)
        else:
            self.lag.take()
            self.lag.start()
            if s.records:
                self.sink.open_records(
                    f"{s.records}.worker{role.index}" if role.is_worker else s.records
                )
        self.control.start(s, role)

    # -- distributed and live ----------------------------------------------------------------
    def _take_delta(self) -> Tally:
        tally = self.sink.take()
        tally.lag = self.lag.take()
        return tally

    def _step_requests(self, index: int) -> int:
        agg = self.sink.tally.steps.get(index)
        return agg.requests + agg.failed if agg is not None else 0

    def _live_view(self) -> LiveView:
        return LiveView(
            final=lambda: self.last_summary,
            configured=lambda: self.ctx is not None,
            aggregate=lambda: self.sink.tally.total,
            info=lambda: self.run_info(final=False),
            api_key=lambda: self.ctx.settings.api_key if self.ctx is not None else "",
        )

    # -- the end -----------------------------------------------------------------------------
    def _on_reset_stats(self, **_kw: Any) -> None:
        """Locust's "Reset stats" resets the LLM figures too (workers send deltas: no reset)."""
        if self.worker is None:
            self.sink.take()

    def _on_test_stop(self, environment: Environment, **_kw: Any) -> None:
        self.control.stop()
        if self.master is None:
            self.lag.stop()
        records_error = self.sink.close_records()
        self.output_errors = [str(records_error)] if records_error else []
        if self.worker is not None:
            if records_error:
                log.error("llm-users: %s", records_error)
            self.worker.send_final()
            return
        if self.ctx is None:
            return
        if self.master is None:
            self.sink.tally.lag = self.lag.take()
        self.report()

    def run_info(self, final: bool = True) -> RunInfo:
        assert self.ctx is not None
        target = getattr(self.env.runner, "target_user_count", 0) or 0
        workers = self.master.summary() if self.master is not None else None
        concurrency = max(self.control.peak_users, target)
        return run_info(self.ctx, self.sink.tally, self.control, concurrency, workers, final)

    def report(self) -> dict[str, Any]:
        assert self.ctx is not None
        self.last_summary = print_and_write(
            self.ctx, self.sink.tally, self.run_info(), self.output_errors
        )
        return self.last_summary

    def _on_quitting(self, environment: Environment, **_kw: Any) -> None:
        """The exit code: 3 when --slo-target was missed, 4 when the run was aborted."""
        if self.worker is not None or self.last_summary is None or self.ctx is None:
            return
        code = exit_code(
            self.last_summary,
            self.ctx.settings.slo_target,
            self.control.abort_reason is not None,
            unwritable=bool(self.output_errors),
        )
        if code is not None:
            environment.process_exit_code = code
