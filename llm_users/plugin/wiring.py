"""Wires the plugin onto a Locust Environment, by role: one :class:`LLMPlugin` per Environment.

The work is done by the parts it wires, beside it in plugin/ (context, sink, control,
distributed, finish, warmup, serverwatch, keypin) and the web UI's read-only view (webui/).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from ..errors import ConfigError, LLMUsersError
from ..report.safe_text import TerminalSafeFilter, for_terminal
from ..report.summary import RunInfo
from ..role import Role
from ..webui.live import LiveView
from . import gcfreeze
from .accounting import Accounting
from .backoff import Reachability
from .context import RunContext, build_context, role_of, startup_key
from .control import RunControl, is_headless
from .distributed import MasterLink, WorkerLink
from .finish import finish, live_info
from .gpuwatch import GpuWatch
from .keypin import KeyPin
from .looplag import LoopLagMonitor
from .serverwatch import ServerWatch
from .sink import ResultSink
from .warmup import WarmupGate

__all__ = ["LLMPlugin", "plugin_of", "register", "setup"]

log = logging.getLogger("llm_users")


def register(events: Any) -> None:
    """For a locustfile: add the options and set the plugin up on every Environment."""
    from ..options.settings import add_arguments

    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(lambda environment, **_kw: setup(environment).on_init())


def setup(environment: Environment) -> LLMPlugin:
    """Attach (once) and return the plugin of this Environment."""
    plugin = getattr(environment, "llm_plugin", None)
    if plugin is None:
        if not any(isinstance(f, TerminalSafeFilter) for f in log.filters):
            log.addFilter(TerminalSafeFilter())  # server text in our log lines: no escapes
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
        self.complete = self.sink.complete  # counts one finished record, now
        self.accounting = Accounting(lambda rec, step: self.complete(rec, step))
        self.control = RunControl(env)
        self.warmup = WarmupGate()  # users ask it, at each request's start
        self.reach = Reachability()  # users tell it whether the server answered
        self.in_flight = 0  # requests sent by this process's users and not yet finished
        self.control.on_end = self.lag.freeze  # the stop itself blocks the loop: not measured
        self.control.step_requests = lambda i: self.sink.tally.step_requests(i)
        self.control.step_aggregate = lambda i: self.sink.tally.steps.get(i)
        self.sink.steady_window = lambda: self.control.steady_window
        self.sink.observers.append(self.control.watch)
        self.server = ServerWatch()  # the server's /metrics: master or local only
        self.gpu = GpuWatch()  # --gpu-metrics, the same way
        self.worker: WorkerLink | None = None
        self.master: MasterLink | None = None
        self.last_summary: dict[str, Any] | None = None
        self.setup_error: str | None = None  # why the last start stopped before any request
        self.key = KeyPin()  # master/local: the start-up key and the one host it may go to
        self._init_done = False
        ev = env.events
        ev.test_start.add_listener(self._on_test_start)
        ev.test_stop.add_listener(self._on_test_stop)
        ev.test_stopping.add_listener(lambda **_kw: self.lag.freeze())
        ev.quitting.add_listener(self._on_quitting)
        ev.reset_stats.add_listener(lambda **_kw: self.worker is None and self.sink.take())

    @property
    def role(self) -> Role:
        return role_of(self.env.runner, self.worker.workers if self.worker is not None else 1)

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
            self.worker = WorkerLink(runner, self.control, lambda: self.sink.take(self.lag.take()))
            return
        opts = self.env.parsed_options
        if opts is None:
            return
        # The web form always posts the (masked, empty) key field: keep the start-up key,
        # pinned to the start-up host.
        self.key = KeyPin(startup_key(opts), self.env.host or getattr(opts, "host", None))
        if self.env.web_ui is not None:
            self.key.warn_web_ui(opts)
        try:
            self.ctx = self._build(check_server=is_headless(self.env))
            self.control.initial_users(opts, self.ctx.settings)
        except ConfigError as exc:
            if is_headless(self.env):
                sys.stderr.write(f"llm-users: error: {for_terminal(str(exc))}\n")
                sys.exit(2)
            log.error("llm-users: %s (fix it in the start form)", exc)
            self.setup_error = str(exc)
        if self.env.web_ui is not None:
            from ..webui.tab import install_web_ui

            install_web_ui(self.env, self._live_view())

    def _build(self, check_server: bool) -> RunContext:
        w = self.worker
        return build_context(
            self.env.parsed_options,
            self.env.host,
            self.role,
            api_key=w.api_key if w is not None else self.key.for_host(self._host()),
            model=w.model if w is not None else "",
            check_server=check_server,
            previous=self.ctx,
        )

    def _host(self) -> str | None:
        return self.env.host or getattr(self.env.parsed_options, "host", None)

    def _on_test_start(self, environment: Environment, **_kw: Any) -> None:
        self.sink.take()
        self.last_summary = None
        self.setup_error = None
        self.reach = Reachability()
        try:
            # Settings are resolved once: again only where options can change since (the web
            # form) or first arrive (a worker, with the spawn message).
            if self.ctx is None or self.worker is not None or not is_headless(self.env):
                self.ctx = self._build(check_server=not is_headless(self.env) or self.ctx is None)
        except ConfigError as exc:
            log.error("llm-users: %s", exc)
            self.setup_error = str(exc)
            self.control.end_test(str(exc))
            return
        s, role = self.ctx.settings, self.role
        self.sink.configure(self.ctx)
        if self.master is not None:
            self.master.start(s.api_key, s.model, s.request_rate)
        else:
            gcfreeze.freeze_startup()  # no full GC pass over start-up's objects mid-test
            self.lag.take()
            self.lag.start()
            self.sink.open_records(s.records, role)
        if not role.is_worker:  # its baseline scrape first: the test's clocks start after it
            self.server.start(self.ctx)
            self.gpu.start(self.ctx)
        self.control.start(s, role, self.ctx.prompts)
        self.warmup.start(s.warmup_requests, s.warmup_time, role)
        self.accounting.start()  # a user's finished record is counted when the loop is idle

    def _live_view(self) -> LiveView:
        return LiveView(
            final=lambda: self.last_summary,
            configured=lambda: self.ctx is not None,
            aggregate=lambda: self.sink.tally.total,
            info=lambda: self.run_info(final=False),
            api_key=lambda: self.ctx.settings.api_key if self.ctx is not None else "",
            users=lambda: float(getattr(self.env.runner, "user_count", 0) or 0),
            loop_lag_s=lambda: self.lag.p99_s(self.sink.tally.lag if self.master else None),
            server=self.server.live,
            setup_error=lambda: self.setup_error,
        )

    def run_info(self, final: bool = True) -> RunInfo:
        assert self.ctx is not None
        return live_info(
            self.env, self.ctx, self.sink.tally, self.control, self.master, final, self.server
        )

    # -- the end -----------------------------------------------------------------------------
    def _on_quitting(self, **_kw: Any) -> None:
        """Locust fires ``quitting`` on Ctrl-C and SIGTERM before it stops the users; at the
        normal end of a test they have stopped already."""
        state = getattr(self.env.runner, "state", None)
        if state in (STATE_RUNNING, STATE_SPAWNING) and self.worker is None:
            self.control.interrupted = True
            self.control.dropped_in_flight = None if self.master is not None else self.in_flight

    def _on_test_stop(self, environment: Environment, **_kw: Any) -> None:
        self.accounting.stop()  # the last records are counted before anything is summed up
        self.reach.close(self.sink.tally)  # a server still down at the end: up to now
        self.control.stop()
        self.server.stop()
        if self.worker is None and self.ctx is not None and self.ctx.settings.cancel_rate:
            self.server.settle(self.ctx)  # abort verification: were the cancelled ones freed?
        self.gpu.stop()
        if self.master is None:
            self.lag.stop()
            self.control.generator_cpu_share = self.lag.cpu_share()
            gcfreeze.thaw()
        records_error = self.sink.close_records()
        errors = [str(records_error)] if records_error else []  # output files not written
        if self.worker is not None:
            self.worker.send_final(records_error)
        elif self.ctx is not None and self.setup_error is None:  # (no summary of no test)
            if self.master is None:
                self.sink.tally.lag = self.lag.take()
            self.last_summary = finish(
                environment,
                self.ctx,
                self.sink.tally,
                self.control,
                self.master,
                self.server,
                errors,
                self.gpu,
            )
