"""Wires the plugin onto a Locust Environment: settings, per-request bookkeeping, the summary.

One :class:`LLMPlugin` per Environment (``setup(env)``), no module-level state. It branches
once on the runner's role: a *worker* sends aggregate deltas to the master (see
``distributed.py``); the *master* merges them; a *local* runner aggregates directly. The
summary is printed, and the JSON and HTML reports written, at test stop.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from typing import Any

import gevent
from locust.env import Environment
from locust.event import EventHook
from locust.runners import STATE_SPAWNING, MasterRunner, WorkerRunner

from . import distributed as d
from .aggregate import Aggregate
from .client import ClientConfig, LLMClient
from .errors import ConfigError, LLMUsersError
from .figures import slo_met
from .http import Origin, make_ssl_context
from .load import ArrivalSchedule, SweepController
from .looplag import LoopLagMonitor
from .metrics import RequestResult, result_of
from .options import Settings, add_arguments
from .preflight import preflight
from .prompts import PromptSource, SeedPrompts
from .protocol import ENDPOINTS
from .record import RequestRecord
from .reporters import RecordsWriter, write_json
from .summary import RunInfo, request_line, seed_lines, summary_dict, sweep_rows, table_lines
from .tokens import load_counter

__all__ = ["LLMPlugin", "plugin_of", "register", "setup"]

log = logging.getLogger("llm_users")

LAG_WARN_MS = 5.0  # p99 loop lag above this makes timings uncertain: say so
LATE_START_MS = 10.0  # open loop: a request started this late means the users could not keep up
EXIT_SLO = 3  # --slo-target missed
EXIT_ABORTED = 4  # stopped because every request failed for --max-failing-seconds


class LLMRequestError(Exception):
    """What Locust's failure table shows for a failed LLM request."""


def register(events: Any) -> None:
    """For a locustfile: add the options and set the plugin up on every Environment."""
    events.init_command_line_parser.add_listener(add_arguments)

    def _on_init(environment: Environment, **_kw: Any) -> None:
        setup(environment).on_init()

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
        raise LLMUsersError("llm_users is not set up: call llm_users.register(events) first")
    return plugin


class LLMPlugin:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.settings: Settings | None = None
        self.counter: Any = None  # text -> tokens, when --tokenizer is given
        self.ssl_context: Any = None
        self.origin: Origin | None = None
        self.prompts: PromptSource | None = None  # shared by the users of this process
        self._prompts_key: tuple[Any, ...] = ()
        self.total = Aggregate()  # local and master: the whole run
        self.steps: dict[int, Aggregate] = {}  # local and master: per sweep step
        self.delta = d.Delta()  # worker: since the last report to the master
        self.lag = LoopLagMonitor()
        self.records: RecordsWriter | None = None
        self.schedule: ArrivalSchedule | None = None  # open loop
        self.sweep: SweepController | None = None
        self.step = 0
        self.users_done = 0
        self.peak_users = 0
        self.worker_reports: dict[str, dict[str, Any]] = {}  # master: client id -> state
        self.last_summary: dict[str, Any] | None = None
        self.abort_reason: str | None = None
        self.running = False
        self._init_done = False
        self._master_key = ""  # worker: the API key the master sent
        self._startup_key = ""  # master/local: the key of the command line or environment
        self._workers = 1  # worker: how many workers the master had at test start
        self._rate_share: float | None = None  # worker: its share of --request-rate
        self._failing_since: float | None = None  # first failure since the last success
        ev = env.events
        for name in ("llm_first_token", "llm_follow_tokens", "llm_request"):
            if not hasattr(ev, name):
                setattr(ev, name, EventHook())
        ev.test_start.add_listener(self._on_test_start)
        ev.test_stop.add_listener(self._on_test_stop)
        ev.test_stopping.add_listener(lambda **_kw: self.lag.freeze())
        ev.quitting.add_listener(self._on_quitting)
        ev.spawning_complete.add_listener(self._on_spawning_complete)
        ev.reset_stats.add_listener(self._on_reset_stats)
        ev.report_to_master.add_listener(self._on_report_to_master)
        ev.worker_report.add_listener(self._on_worker_report)

    # -- roles -------------------------------------------------------------------------
    @property
    def runner(self) -> Any:
        """The runner (local, master or worker): set by Locust before any event we handle."""
        return self.env.runner

    @property
    def is_worker(self) -> bool:
        return isinstance(self.env.runner, WorkerRunner)

    @property
    def worker_index(self) -> int:
        """This worker's index (0 in a local run or on the master)."""
        return int(getattr(self.runner, "worker_index", 0)) if self.is_worker else 0

    @property
    def is_master(self) -> bool:
        return isinstance(self.env.runner, MasterRunner)

    @property
    def headless(self) -> bool:
        opts = self.env.parsed_options
        return (
            bool(opts is not None and getattr(opts, "headless", False)) or self.env.web_ui is None
        )

    # -- start-up ----------------------------------------------------------------------
    def on_init(self) -> None:
        """Validate the command line before anything starts (exit 2 with one line if bad)."""
        if self._init_done:
            return
        self._init_done = True
        runner = self.runner
        if self.is_master:
            runner.register_message(d.MSG_DONE, self._on_done_message)
            runner.register_message(d.MSG_FINAL, self._on_final_message)
            runner.register_message(d.MSG_ABORT, self._on_abort_message)
            d.close_stop_window(runner)
        if self.is_worker:
            runner.register_message(d.MSG_SETUP, self._on_setup_message)
            runner.register_message(d.MSG_RATE, self._on_rate_message)
            runner.register_message(d.MSG_STEP, self._on_step_message)
            return  # workers get their options from the master, with the first spawn
        if self.env.parsed_options is None:
            return
        try:
            # The web form always posts the (masked, empty) key field: keep the start-up key.
            self._startup_key = Settings.from_options(self.env.parsed_options).api_key
            settings = self.configure(check_server=self.headless)
            self._apply_sweep_start(settings)
        except ConfigError as exc:
            if self.headless:
                sys.stderr.write(f"llm-users: error: {exc}\n")
                sys.stderr.flush()
                sys.exit(2)
            log.error("llm-users: %s (fix it in the start form)", exc)
        if self.env.web_ui is not None:
            from .web import install_web_ui

            install_web_ui(self)

    def configure(self, check_server: bool) -> Settings:
        """Build settings from the options; load what the hot path needs; check the server."""
        opts = self.env.parsed_options
        settings = Settings.from_options(opts, master_key=self._master_key or self._startup_key)
        host = self.env.host or (getattr(opts, "host", None) if opts is not None else None)
        if not host:
            raise ConfigError("no --host given (the server's base URL, e.g. http://127.0.0.1:8000)")
        origin = Origin.parse(host)
        ssl_context = None
        if origin.scheme == "https":
            ssl_context = make_ssl_context(settings.insecure, settings.ca_bundle or None)
            if settings.insecure:
                log.warning("llm-users: --insecure: TLS certificates are NOT verified")
        # The tokenizer is local to each process that sends requests (not the master).
        if settings.tokenizer and not self.is_master:
            self.counter = load_counter(settings.tokenizer)  # ShareGPT output lengths use it too
        else:
            self.counter = None
        prompts = self._prompt_source(settings)
        if check_server and settings.preflight and not self.is_worker:
            model = preflight(origin, settings, ssl_context)
            if model != settings.model and opts is not None:
                opts.model = model  # reaches the workers with the spawn message
                settings = Settings.from_options(
                    opts, master_key=self._master_key or self._startup_key
                )
        self.settings, self.origin, self.ssl_context = settings, origin, ssl_context
        self.prompts = prompts
        return settings

    def _prompt_source(self, s: Settings) -> PromptSource:
        """Loaded once per process, before users start (files and tokenizers are slow);
        reused across test starts while the options that shape it stay the same."""
        index = self.worker_index
        key = (
            s.dataset,
            s.dataset_format,
            s.dataset_order,
            s.dataset_output_len,
            s.input_tokens,
            s.input_tokens_spread,
            s.tokenizer,
            s.prompt_type,
            s.prompt_language,
            s.seed,
            index,
            self._workers,
        )
        if self.prompts is not None and key == self._prompts_key:
            return self.prompts
        self._prompts_key = key
        if s.dataset:
            from .datasets import load_dataset

            # Sequential: worker i of n sends prompts i, i+n, ... (together: the file once per
            # pass). Shuffle: every worker the whole file, in an order seeded by its index.
            n = self._workers if self.is_worker and s.dataset_order == "sequential" else 1
            counter = self.counter if s.dataset_output_len else None
            return load_dataset(
                s.dataset,
                fmt=None if s.dataset_format == "auto" else s.dataset_format,
                use_output_len=s.dataset_output_len,
                counter=counter,
                order=s.dataset_order,
                seed=index if s.seed is None else s.seed_for("dataset", index),
                partition=(index % n, n),
            )
        if s.input_tokens:
            if self.is_master:  # the master sends nothing; workers build their own
                return SeedPrompts(s.prompt_type, s.prompt_language)
            from .datasets import SyntheticPrompts

            return SyntheticPrompts(
                s.input_tokens,
                s.input_tokens_spread,
                tokenizer_name=s.tokenizer,
                seed=s.seed_for("synthetic", index),
            )
        return SeedPrompts(
            s.prompt_type, s.prompt_language, rng=random.Random(s.seed_for("prompts", index))
        )

    def _apply_sweep_start(self, s: Settings) -> None:
        """A headless user sweep starts at its first step's user count, whatever -u says."""
        opts = self.env.parsed_options
        if s.sweep and s.sweep_of == "users" and opts is not None:
            opts.num_users = int(s.sweep[0])
            opts.spawn_rate = max(float(getattr(opts, "spawn_rate", 0) or 0), s.sweep[0])

    def _on_test_start(self, environment: Environment, **_kw: Any) -> None:
        self.total = Aggregate()
        self.steps = {}
        self.delta = d.Delta()
        self.users_done = 0
        self.peak_users = 0
        self.step = 0
        self.worker_reports.clear()
        self.last_summary = None
        self.abort_reason = None
        self._failing_since = None
        try:
            # Web UI runs may change options in the form; workers receive them now.
            self.configure(check_server=not self.headless or self.settings is None)
        except ConfigError as exc:
            log.error("llm-users: %s", exc)
            self._end_test(reason=str(exc))
            return
        s = self.settings
        assert s is not None
        runner = self.runner
        if self.is_master:
            # Sent before the spawn messages (test_start fires first), so workers have it
            # when their own test_start comes.
            workers = max(1, runner.worker_count)
            runner.send_message(
                d.MSG_SETUP,
                {
                    "api_key": s.api_key,
                    "workers": workers,
                    "rate": s.request_rate / workers,
                },
            )
        else:
            self.lag.take()
            self.lag.start()
            if s.request_rate:
                rate = self._rate_share if self.is_worker and self._rate_share else s.request_rate
                seed = s.seed_for("arrivals", self.worker_index)
                self.schedule = ArrivalSchedule(rate, s.arrivals, seed)
            else:
                self.schedule = None
            if s.records:
                path = s.records
                if self.is_worker:
                    path = f"{path}.worker{self.worker_index}"
                self.records = RecordsWriter(path)
        if s.sweep and not self.is_worker:
            self.sweep = SweepController(
                s.sweep,
                s.sweep_step_time,
                self._sweep_apply,
                self._sweep_step_finished,
                self._sweep_done,
            )
            self.sweep.start()
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
        assert self.prompts is not None
        return self.prompts

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

    def complete(self, rec: RequestRecord, step: int = 0) -> RequestResult:
        """Turn a finished record into figures, count them, and tell Locust."""
        s = self.settings
        res = result_of(rec, self.counter)
        if s is not None and s.slo:
            res.slo_met = slo_met(res, s.slo)
        if self.is_worker:
            self.delta.total.add(res)
            if s is not None and s.sweep:
                self.delta.step(step).add(res)
        else:
            self.total.add(res)
            if s is not None and s.sweep:
                self.steps.setdefault(step, Aggregate()).add(res)
        self._tell_locust(res)
        if s is not None and s.print_requests:
            print(request_line(res), flush=True)
        if self.records is not None:
            self.records.write(res, worker=self._worker_name())
        self._watch_failures(res)
        return res

    def _tell_locust(self, res: RequestResult) -> None:
        env = self.env
        ev: Any = env.events  # with the plugin's own hooks (llm_first_token, ...)
        path = ENDPOINTS[res.endpoint].path
        ev.request.fire(
            request_type="POST",
            name=path,
            response_time=res.e2e_ms or 0.0,
            response_length=res.output_tokens or 0,
            exception=None if res.ok else LLMRequestError(f"{res.failure}: {res.message}"),
            context={"llm": True},
            response=None,
            url=path,
            start_time=res.start_wall,
        )
        if res.ok and res.stream and res.ttft_ms is not None:
            # Own rows, logged straight into their entries: they show in every Locust report
            # without counting as requests in "Aggregated" or RPS.
            # StatsEntry.log is annotated int but takes float ms, as request events do.
            stats: Any = env.stats
            stats.get("TTFT", "LLM").log(res.ttft_ms, 0)
            if res.follow_latency_ms is not None:
                stats.get("Follow latency", "LLM").log(
                    res.follow_latency_ms, res.follow_tokens or 0
                )
            ev.llm_first_token.fire(ttft_ms=res.ttft_ms, result=res)
            ev.llm_follow_tokens.fire(
                follow_tokens=res.follow_tokens, follow_latency_ms=res.follow_latency_ms, result=res
            )
        ev.llm_request.fire(result=res)

    def _watch_failures(self, res: RequestResult) -> None:
        """Stop a run whose every request has failed for --max-failing-seconds."""
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
            if self.is_worker:
                self.runner.send_message(d.MSG_ABORT, {"reason": reason})
                self._failing_since = None
            else:
                self._abort(reason)

    def _abort(self, reason: str) -> None:
        if self.abort_reason is None:
            self.abort_reason = reason
            log.error("llm-users: stopping the test: %s", reason)
            self._end_test(reason)

    def user_done(self) -> None:
        """A user sent its --requests-per-user: when all have, the test ends by itself."""
        if self.is_worker:
            self.runner.send_message(d.MSG_DONE, {"n": 1})
            return
        self._count_done(1)

    def _count_done(self, n: int) -> None:
        self.users_done += n
        target = getattr(self.runner, "target_user_count", 0) or 0
        if target and self.users_done >= target and self.running:
            self._end_test(reason="every user sent its --requests-per-user")

    def _end_test(self, reason: str) -> None:
        runner = self.runner
        log.info("llm-users: %s: stopping the test", reason)
        self.running = False
        self.lag.freeze()  # the stop itself blocks the loop: not part of the measured period
        # Never stop or quit from inside a user's task: do it in a greenlet of its own.
        gevent.spawn(runner.quit if self.headless else runner.stop)

    def _worker_name(self) -> str | None:
        return str(self.worker_index) if self.is_worker else None

    # -- open loop and sweeps ------------------------------------------------------------
    def _send_rate(self, rate: float) -> None:
        workers = max(1, self.runner.worker_count)
        self.runner.send_message(d.MSG_RATE, {"rate": rate / workers})

    def _on_rate_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self._rate_share = float(msg.data["rate"])
        if self.schedule is not None:
            self.schedule.set_rate(self._rate_share)

    def _on_step_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self.step = int(msg.data["index"])

    def _sweep_apply(self, index: int, value: float) -> None:
        s = self.settings
        runner = self.runner
        assert s is not None
        while runner.state == STATE_SPAWNING:  # let the initial spawn finish first
            gevent.sleep(0.1)
        self.step = index
        if self.is_master:
            runner.send_message(d.MSG_STEP, {"index": index})
        if s.sweep_of == "rate":
            if self.is_master:
                self._send_rate(value)
            elif self.schedule is not None:
                self.schedule.set_rate(value)
        elif runner.target_user_count != int(value):
            runner.start(int(value), spawn_rate=max(value, 1.0))

    def _sweep_step_finished(self, index: int) -> bool:
        s = self.settings
        if s is None or not s.sweep_step_requests:
            return False
        agg = self.steps.get(index)
        return agg is not None and agg.requests + agg.failed >= s.sweep_step_requests

    def _sweep_done(self) -> None:
        if self.running:
            self._end_test("the sweep's last step ended")

    # -- distributed -------------------------------------------------------------------
    def _take_delta(self) -> dict[str, Any]:
        delta, self.delta = self.delta, d.Delta()
        delta.total.hist["loop_lag_ms"] = self.lag.take()
        return delta.to_dict()

    def _on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        if self.is_worker:
            data[d.REPORT_KEY] = self._take_delta()

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        payload = data.get(d.REPORT_KEY)
        if payload is not None:
            self._merge_from(client_id, payload, final=False)

    def _on_final_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self._merge_from(msg.node_id, msg.data, final=True)

    def _on_setup_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        data = msg.data or {}
        self._master_key = str(data.get("api_key") or "")
        self._workers = max(1, int(data.get("workers") or 1))
        self._rate_share = float(data.get("rate") or 0.0) or None

    def _on_done_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self._count_done(int(msg.data.get("n", 1)))

    def _on_abort_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self._abort(f"{msg.data.get('reason')} (worker {msg.node_id})")

    def _merge_from(self, client_id: str, payload: dict[str, Any], final: bool) -> None:
        incoming = d.Delta()
        incoming.merge_dict(payload)
        self.total.merge(incoming.total)
        for i, agg in incoming.steps.items():
            self.steps.setdefault(i, Aggregate()).merge(agg)
        state = self.worker_reports.setdefault(client_id, {"final": False, "last": None})
        state["last"] = time.time()
        state["final"] = state["final"] or final

    # -- the end -----------------------------------------------------------------------
    def _on_reset_stats(self, **_kw: Any) -> None:
        """Locust's "Reset stats" resets the LLM figures too (workers send deltas: no reset)."""
        if not self.is_worker:
            self.total = Aggregate()
            self.steps = {}

    def _on_spawning_complete(self, user_count: int, **_kw: Any) -> None:
        self.peak_users = max(self.peak_users, user_count)

    def _on_test_stop(self, environment: Environment, **_kw: Any) -> None:
        self.running = False
        if self.sweep is not None:
            self.sweep.stop()
        if not self.is_master:
            self.lag.stop()
        if self.records is not None:
            self.records.close()
            self.records = None
        if self.is_worker:
            self.runner.send_message(d.MSG_FINAL, self._take_delta())
            return
        if self.settings is None:
            return
        if not self.is_master:
            self.total.hist["loop_lag_ms"] = self.lag.take()
        self.report()

    def _on_quitting(self, environment: Environment, **_kw: Any) -> None:
        """The exit code: 3 when --slo-target was missed, 4 when the run was aborted."""
        if self.is_worker or self.last_summary is None:
            return
        if self.abort_reason is not None:
            environment.process_exit_code = EXIT_ABORTED
            return
        goodput = self.last_summary.get("goodput")
        s = self.settings
        if goodput and s is not None and s.slo_target:
            met = goodput["percent"] is not None and goodput["percent"] >= s.slo_target
            environment.process_exit_code = 0 if met else EXIT_SLO

    def run_info(self, final: bool = True) -> RunInfo:
        """Facts for the summary; ``final=False`` for live views (no end-of-run warnings)."""
        s = self.settings
        assert s is not None
        runner = self.runner
        concurrency = max(self.peak_users, getattr(runner, "target_user_count", 0) or 0)
        extra: dict[str, Any] = {"notes": []}
        notes: list[str] = extra["notes"]
        lag = self.total.hist.get("loop_lag_ms")
        if lag is not None and lag.count:
            summ = lag.summary()
            extra["client_loop_lag_ms"] = {k: summ[k] for k in ("p50", "p99", "max", "count")}
            if (summ["p99"] or 0) > LAG_WARN_MS:
                notes.append(
                    f"the load generator's event loop lagged (p99 {summ['p99']:.1f} ms): "
                    "timings carry that much uncertainty; add workers to fix it"
                )
        if s.seed is not None:
            extra["seed"] = s.seed
        if s.request_rate:
            extra["request_rate"] = s.request_rate
            extra["arrivals"] = s.arrivals
            q = self.total.hist["queue_delay_ms"]
            late = q.count - q.rank_below(LATE_START_MS) if q.count else 0
            if late:
                notes.append(
                    f"the users could not keep up with {s.request_rate:g} requests/s: {late} "
                    f"requests started more than {LATE_START_MS:g} ms late (max {q.max:.0f} ms); "
                    "add users (-u); latency from the intended start is reported too"
                )
        if self.abort_reason:
            extra["aborted"] = self.abort_reason
            notes.append(f"the test was stopped: {self.abort_reason}")
        if self.is_master:
            extra["workers"] = self._worker_notes(notes if final else [])
        if s.slo:
            extra["slo"] = dict(s.slo)
            extra["slo_target"] = s.slo_target or None
        if s.sweep and self.sweep is not None:
            extra["sweep"] = sweep_rows(self.steps, s, self.sweep.started_at, self.sweep.ended_at)
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

    def _worker_notes(self, notes: list[str]) -> dict[str, Any]:
        out = {}
        for cid, st in sorted(self.worker_reports.items()):
            out[cid] = {"final_report": st["final"], "last_report_at": st["last"]}
            if not st["final"]:
                when = time.strftime("%H:%M:%S", time.localtime(st["last"])) if st["last"] else "?"
                notes.append(f"worker {cid} sent no final report: its data after {when} is missing")
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
        if s is not None and s.html_report:
            from .report_html import write_html_report

            write_html_report(
                s.html_report,
                summary,
                self.total.hist,
                self.total.timeseries(),
                summary.get("sweep"),
            )
        return summary
