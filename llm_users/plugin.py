"""Wires the plugin onto a Locust Environment: settings, per-request bookkeeping, the summary.

One :class:`LLMPlugin` per Environment (``setup(env)``), no module-level state. It branches
once on the runner's role: a *worker* sends aggregate deltas to the master; the *master*
merges them; a *local* runner aggregates directly. The summary is printed at test stop.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import gevent
from locust.env import Environment
from locust.event import EventHook
from locust.runners import STATE_INIT, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

from .aggregate import Aggregate
from .client import ClientConfig, LLMClient
from .errors import ConfigError, LLMUsersError
from .http import Origin, make_ssl_context
from .looplag import LoopLagMonitor
from .metrics import RequestResult, result_of
from .options import Settings, add_arguments
from .preflight import preflight
from .prompts import PromptSource, SeedPrompts
from .protocol import ENDPOINTS
from .record import RequestRecord
from .reporters import RecordsWriter, write_json
from .summary import RunInfo, request_line, seed_lines, summary_dict, table_lines
from .tokens import load_counter

__all__ = ["LLMPlugin", "plugin_of", "register", "setup"]

log = logging.getLogger("llm_users")

MSG_DONE = "llm_users:done"  # worker -> master: users that finished --requests-per-user
MSG_FINAL = "llm_users:final"  # worker -> master: the last aggregate delta, at its test_stop
REPORT_KEY = "llm_users"  # key of the delta in Locust's periodic worker report
LAG_WARN_MS = 5.0


class LLMRequestError(Exception):
    """What Locust's failure table shows for a failed LLM request."""


def register(events: Any) -> None:
    """For a locustfile: add the options and set the plugin up on every Environment."""
    events.init_command_line_parser.add_listener(add_arguments)

    def _on_init(environment: Environment, **_kw: Any) -> None:
        plugin = setup(environment)
        plugin.on_init()

    events.init.add_listener(_on_init)


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
        raise LLMUsersError("llm_users is not set up: call llm_users.register(events) in the locustfile")
    return plugin


class LLMPlugin:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.settings: Settings | None = None
        self.counter: Any = None  # text -> tokens, when --tokenizer is given
        self.ssl_context: Any = None
        self.origin: Origin | None = None
        self.total = Aggregate()  # local and master: the whole run
        self.delta = Aggregate()  # worker: since the last report to the master
        self.lag = LoopLagMonitor()
        self.records: RecordsWriter | None = None
        self.users_done = 0
        self.peak_users = 0
        self.worker_reports: dict[str, dict[str, Any]] = {}  # master: client id -> state
        self.last_summary: dict[str, Any] | None = None
        self.running = False
        self._init_done = False
        ev = env.events
        for name in ("llm_first_token", "llm_follow_tokens", "llm_request"):
            if not hasattr(ev, name):
                setattr(ev, name, EventHook())
        ev.test_start.add_listener(self._on_test_start)
        ev.test_stop.add_listener(self._on_test_stop)
        ev.spawning_complete.add_listener(self._on_spawning_complete)
        ev.report_to_master.add_listener(self._on_report_to_master)
        ev.worker_report.add_listener(self._on_worker_report)

    # -- roles -------------------------------------------------------------------------
    @property
    def is_worker(self) -> bool:
        return isinstance(self.env.runner, WorkerRunner)

    @property
    def is_master(self) -> bool:
        return isinstance(self.env.runner, MasterRunner)

    @property
    def headless(self) -> bool:
        opts = self.env.parsed_options
        return bool(opts is not None and getattr(opts, "headless", False)) or self.env.web_ui is None

    # -- start-up ----------------------------------------------------------------------
    def on_init(self) -> None:
        """Validate the command line before anything starts (exit 2 with one line if bad)."""
        if self._init_done:
            return
        self._init_done = True
        runner = self.env.runner
        if self.is_master:
            runner.register_message(MSG_DONE, self._on_done_message)
            runner.register_message(MSG_FINAL, self._on_final_message)
            self._close_stop_window(runner)
        if self.is_worker or self.env.parsed_options is None:
            return  # workers get their options from the master, with the first spawn
        try:
            self.configure(check_server=self.headless)
        except ConfigError as exc:
            if self.headless:
                sys.stderr.write(f"llm-users: error: {exc}\n")
                sys.stderr.flush()
                sys.exit(2)
            log.error("llm-users: %s (fix it in the start form)", exc)

    def configure(self, check_server: bool) -> Settings:
        """Build settings from the options; load what the hot path needs; check the server."""
        opts = self.env.parsed_options
        settings = Settings.from_options(opts)
        host = self.env.host or (getattr(opts, "host", None) if opts is not None else None)
        if not host:
            raise ConfigError("no --host given (the server's base URL, e.g. http://127.0.0.1:8000)")
        origin = Origin.parse(host)
        ssl_context = None
        if origin.scheme == "https":
            ssl_context = make_ssl_context(settings.insecure, settings.ca_bundle or None)
            if settings.insecure:
                log.warning("llm-users: --insecure: TLS certificates are NOT verified")
        counter = load_counter(settings.tokenizer) if settings.tokenizer and not self.is_master else None
        if check_server and settings.preflight and not self.is_worker:
            model = preflight(origin, settings, ssl_context)
            if model != settings.model and opts is not None:
                opts.model = model  # reaches the workers with the spawn message
                settings = Settings.from_options(opts)
        self.settings, self.origin, self.ssl_context, self.counter = (
            settings, origin, ssl_context, counter)  # fmt: skip
        return settings

    def _on_test_start(self, environment: Environment, **_kw: Any) -> None:
        self.total = Aggregate()
        self.delta = Aggregate()
        self.users_done = 0
        self.peak_users = 0
        self.worker_reports.clear()
        self.last_summary = None
        try:
            # Web UI runs may change options in the form; workers receive them now.
            first = self.settings is None
            self.configure(check_server=not self.headless or first)
        except ConfigError as exc:
            log.error("llm-users: %s", exc)
            self._end_test(reason=str(exc))
            return
        s = self.settings
        assert s is not None
        if not self.is_master:
            self.lag.take()
            self.lag.start()
            if s.records:
                path = s.records
                if self.is_worker:
                    path = f"{path}.worker{getattr(self.env.runner, 'worker_index', 0)}"
                self.records = RecordsWriter(path)
        self.running = True

    # -- per request (called by users) ------------------------------------------------
    def new_client(self) -> LLMClient:
        s, origin = self.settings, self.origin
        if s is None or origin is None:
            raise LLMUsersError("llm_users: a user started before the plugin was configured")
        cfg = ClientConfig(
            origin=origin,
            endpoint=ENDPOINTS[s.endpoint],
            headers=s.request_headers(),
            connect_timeout=s.connect_timeout,
            first_token_timeout=s.first_token_timeout,
            request_timeout=s.request_timeout,
        )
        return LLMClient(cfg, self.ssl_context)

    def new_prompts(self) -> PromptSource:
        s = self.settings
        assert s is not None
        return SeedPrompts(s.prompt_type, s.prompt_language)

    def body(self, prompt: Any, max_tokens: int | None) -> dict[str, Any]:
        s = self.settings
        assert s is not None
        return ENDPOINTS[s.endpoint].body(
            prompt,
            model=s.model,
            max_tokens=max_tokens if max_tokens is not None else s.max_tokens,
            stream=s.stream,
            stream_usage=s.stream_usage,
            system_prompt=s.system_prompt,
            extra=s.extra_body,
        )

    def complete(self, rec: RequestRecord) -> RequestResult:
        """Turn a finished record into figures, count them, and tell Locust."""
        res = result_of(rec, self.counter)
        (self.delta if self.is_worker else self.total).add(res)
        env = self.env
        ev = env.events
        path = ENDPOINTS[res.endpoint].path
        exc = None if res.ok else LLMRequestError(f"{res.failure}: {res.message}")
        ev.request.fire(
            request_type="POST",
            name=path,
            response_time=res.e2e_ms or 0.0,
            response_length=res.output_tokens or 0,
            exception=exc,
            context={"llm": True},
            response=None,
            url=path,
            start_time=res.start_wall,
        )
        if res.ok and res.stream and res.ttft_ms is not None:
            # Own rows, logged straight into their entries: they show in every Locust report
            # without counting as requests in "Aggregated" or RPS.
            stats = env.stats
            stats.get("TTFT", "LLM").log(res.ttft_ms, 0)
            if res.follow_latency_ms is not None:
                stats.get("Follow latency", "LLM").log(res.follow_latency_ms, res.follow_tokens or 0)
            ev.llm_first_token.fire(ttft_ms=res.ttft_ms, result=res)
            ev.llm_follow_tokens.fire(
                follow_tokens=res.follow_tokens, follow_latency_ms=res.follow_latency_ms, result=res
            )
        ev.llm_request.fire(result=res)
        s = self.settings
        if s is not None and s.print_requests:
            print(request_line(res), flush=True)
        if self.records is not None:
            self.records.write(res, worker=self._worker_name())
        return res

    def user_done(self) -> None:
        """A user sent its --requests-per-user: when all have, the test ends by itself."""
        if self.is_worker:
            self.env.runner.send_message(MSG_DONE, {"n": 1})
            return
        self._count_done(1)

    def _count_done(self, n: int) -> None:
        self.users_done += n
        target = getattr(self.env.runner, "target_user_count", 0) or 0
        if target and self.users_done >= target and self.running:
            self._end_test(reason="every user sent its --requests-per-user")

    def _end_test(self, reason: str) -> None:
        runner = self.env.runner
        log.info("llm-users: %s: stopping the test", reason)
        self.running = False
        # Never stop or quit from inside a user's task: do it in a greenlet of its own.
        gevent.spawn(runner.quit if self.headless else runner.stop)

    def _worker_name(self) -> str | None:
        return str(getattr(self.env.runner, "worker_index", "")) if self.is_worker else None

    # -- distributed -------------------------------------------------------------------
    def _close_stop_window(self, runner: MasterRunner) -> None:
        """Make every headless end path stop the workers (and get their data) before quitting.

        Locust's headless master fires test_stop before telling workers to stop and listens
        only 0.5 s more; ``stop()`` instead waits for every worker's ``client_stopped``,
        which each worker sends after our final delta.
        """
        original_quit = runner.quit

        def quit_after_stop() -> None:
            if runner.state not in (STATE_INIT, STATE_STOPPED, STATE_STOPPING):
                runner.stop()
            original_quit()

        runner.quit = quit_after_stop  # type: ignore[method-assign]

    def _on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        if not self.is_worker:
            return
        delta, self.delta = self.delta, Aggregate()
        delta.hist["loop_lag_ms"] = self.lag.take()
        data[REPORT_KEY] = delta.to_dict()

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        payload = data.get(REPORT_KEY)
        if payload is None:
            return
        self._merge_from(client_id, payload, final=False)

    def _on_final_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self._merge_from(msg.node_id, msg.data, final=True)

    def _on_done_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self._count_done(int(msg.data.get("n", 1)))

    def _merge_from(self, client_id: str, payload: dict[str, Any], final: bool) -> None:
        self.total.merge(Aggregate.from_dict(payload))
        state = self.worker_reports.setdefault(client_id, {"final": False, "last": None})
        state["last"] = time.time()
        state["final"] = state["final"] or final

    # -- the end -----------------------------------------------------------------------
    def _on_spawning_complete(self, user_count: int, **_kw: Any) -> None:
        self.peak_users = max(self.peak_users, user_count)

    def _on_test_stop(self, environment: Environment, **_kw: Any) -> None:
        self.running = False
        if not self.is_master:
            self.lag.stop()
        if self.records is not None:
            self.records.close()
            self.records = None
        if self.is_worker:
            delta, self.delta = self.delta, Aggregate()
            delta.hist["loop_lag_ms"] = self.lag.take()
            self.env.runner.send_message(MSG_FINAL, delta.to_dict())
            return
        if self.settings is None:
            return
        if not self.is_master:
            self.total.hist["loop_lag_ms"] = self.lag.take()
        self.report()

    def run_info(self) -> RunInfo:
        s = self.settings
        assert s is not None
        runner = self.env.runner
        concurrency = max(self.peak_users, getattr(runner, "target_user_count", 0) or 0)
        extra: dict[str, Any] = {}
        lag = self.total.hist.get("loop_lag_ms")
        if lag is not None and lag.count:
            summ = lag.summary()
            extra["client_loop_lag_ms"] = {k: summ[k] for k in ("p50", "p99", "max", "count")}
            if (summ["p99"] or 0) > LAG_WARN_MS:
                extra.setdefault("notes", []).append(
                    f"the load generator's event loop lagged (p99 {summ['p99']:.1f} ms): "
                    "timings carry that much uncertainty; add workers (--processes) to fix it"
                )
        if self.is_master:
            extra["workers"] = self._worker_notes(extra)
        return RunInfo(
            mode=s.mode,
            concurrency=concurrency,
            endpoint=s.endpoint,
            model=s.model,
            host=str(self.origin) if self.origin else "",
            max_tokens=s.max_tokens,
            tokenizer=s.tokenizer,
            extra=extra,
        )

    def _worker_notes(self, extra: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for cid, st in sorted(self.worker_reports.items()):
            out[cid] = {"final_report": st["final"], "last_report_at": st["last"]}
            if not st["final"]:
                when = time.strftime("%H:%M:%S", time.localtime(st["last"])) if st["last"] else "?"
                extra.setdefault("notes", []).append(
                    f"worker {cid} sent no final report: its data after {when} is missing"
                )
        return out

    def report(self) -> dict[str, Any]:
        info = self.run_info()
        summary = summary_dict(self.total, info)
        self.last_summary = summary
        lines = seed_lines(self.total, info) + table_lines(self.total, info)
        print("\n".join(lines), flush=True)
        s = self.settings
        if s is not None and s.summary_json:
            write_json(s.summary_json, summary)
        return summary
