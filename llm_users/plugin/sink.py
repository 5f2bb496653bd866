"""Where a finished request goes: record -> figures -> tally, Locust's stats, records file.

Everything here runs once per request, after its stream has been read; nothing runs per
token. The SLO check is a pure function of the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from locust.env import Environment

from ..measure.figures import slo_met
from ..measure.histogram import Histogram
from ..measure.per_request import RequestResult, result_of
from ..measure.tally import Tally
from ..record import RequestRecord
from ..report.safe_text import for_terminal
from ..report.summary import request_line
from ..report.writers import OutputError, RecordsWriter
from ..role import Role
from ..wire.endpoints import ENDPOINTS
from ..wire.kclock import KernelClock
from ..workload.tokenizer import Counter
from .context import RunContext
from .events import LLMEvents

__all__ = ["LLMRequestError", "ResultSink", "tell_locust"]


class LLMRequestError(Exception):
    """What Locust's failure table shows for a failed LLM request."""


def tell_locust(env: Environment, events: LLMEvents, res: RequestResult) -> None:
    """One request event for Locust's table; own TTFT/follow rows that stay out of Aggregated;
    then the plugin's own events."""
    if res.cancelled:
        # Hung up on purpose: neither a success nor a failure of Locust's; its own row, out
        # of "Aggregated" (the time is when the client closed the connection).
        cancelled_row: Any = env.stats.get("Cancelled", "LLM")
        cancelled_row.log(res.e2e_ms or 0.0, 0)
        events.llm_request.fire(result=res)
        return
    path = ENDPOINTS[res.endpoint].path
    env.events.request.fire(
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
        # Logged straight into their entries: they show in every Locust report without
        # counting as requests in "Aggregated" or RPS. StatsEntry.log takes float ms.
        stats: Any = env.stats
        stats.get("TTFT", "LLM").log(res.ttft_ms, 0)
        if res.follow_latency_ms is not None:
            stats.get("Follow latency", "LLM").log(res.follow_latency_ms, res.follow_tokens or 0)
        events.llm_first_token.fire(ttft_ms=res.ttft_ms, result=res)
        events.llm_follow_tokens.fire(
            follow_tokens=res.follow_tokens, follow_latency_ms=res.follow_latency_ms, result=res
        )
    events.llm_request.fire(result=res)


class ResultSink:
    """Turns records into results and sends them everywhere they are counted or written."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.events = LLMEvents(env.events)  # for listeners of every result
        self.counter: Counter | None = None
        self.slo: Mapping[str, float] = {}
        self.sweep = False
        # (wall clock from, until or None): the run's steady window so far (control.py)
        self.steady_window: Callable[[], tuple[float | None, float | None]] = lambda: (None, None)
        self.print_requests = False
        self.worker: str | None = None  # this worker's name in the records file
        self.records: RecordsWriter | None = None
        self.tally = Tally()
        self.observers: list[Callable[[RequestResult], None]] = []
        self.clock: KernelClock | None = None  # its uncertainty is reported

    def configure(self, ctx: RunContext) -> None:
        """A test starts with this :class:`~llm_users.plugin.context.RunContext`."""
        settings, role = ctx.settings, ctx.role
        self.counter = ctx.counter
        self.clock = ctx.clock
        if self.clock is not None:
            self.clock.reset()  # a fresh offset for each test
        self.slo = settings.slo
        self.sweep = bool(settings.sweep) or settings.search != "off"  # a search's probes too
        self.print_requests = settings.print_requests
        self.worker = str(role.index) if role.is_worker else None  # its name in the records

    def open_records(self, path: str, role: Role) -> None:
        """--records: one file per process (a worker's gets ``.worker<index>``)."""
        self.close_records()
        if path:
            self.records = RecordsWriter(f"{path}.worker{role.index}" if role.is_worker else path)

    def close_records(self) -> OutputError | None:
        """Close the records file; returns why it could not be written, if it could not."""
        records, self.records = self.records, None
        return records.close() if records is not None else None

    def _in_steady_window(self, res: RequestResult) -> bool:
        """Started once the load reached its target, ended before the first user stopped."""
        since, until = self.steady_window()
        if since is None or res.start_wall < since:
            return False
        return until is None or res.start_wall + (res.e2e_ms or 0.0) / 1000.0 <= until

    def take(self, lag: Histogram | None = None) -> Tally:
        """The tally so far, replaced by a fresh one (a worker's delta, with its ``lag``)."""
        tally, self.tally = self.tally, Tally()
        if lag is not None:
            tally.lag = lag
        return tally

    def complete(self, rec: RequestRecord, step: int = 0) -> RequestResult:
        res = result_of(rec, self.counter)
        if self.slo and not res.cancelled:
            res.slo_met = slo_met(res, self.slo)
        self.tally.add(res, step if self.sweep else None)
        if not res.warmup and self._in_steady_window(res):
            self.tally.steady.add(res)
        kernel = rec.timestamps == "kernel"
        unc = self.clock.uncertainty_us if kernel and self.clock is not None else 0.0
        self.tally.count_stamps(rec.timestamps, rec.clock_step, unc)
        if not res.warmup:  # warm-up requests are in no figure, Locust's included
            tell_locust(self.env, self.events, res)
        if self.print_requests and not res.warmup:
            print(for_terminal(request_line(res)), flush=True)
        if self.records is not None:
            self.records.write(res, worker=self.worker)
        for observe in self.observers:
            observe(res)
        return res
