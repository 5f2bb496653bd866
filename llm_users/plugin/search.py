"""The capacity search (``--search users|rate``) on the sweep machinery: each probe is a
sweep step whose load the last probe's result chose; it ends when its SLO attainment is
decided (measure/capacity.py), the server is over-saturated, or at its cap.

Requests that start in a probe's warm-up go to step ``-(index + 1)``: counted in the run's
total, never in the probe's figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..measure.aggregate import Aggregate
from ..measure.capacity import CONFIDENCE, Probe, SearchPlan, saturated, verdict, wilson
from ..options.settings import Settings

__all__ = ["CapacitySearch", "ttft_points", "warmup_step"]

RATE_RESOLUTION = 0.05  # default --search-resolution for rates: 5 % of the passing rate


def warmup_step(index: int) -> int:
    """The tally step that holds probe ``index``'s warm-up requests (never a probe's own)."""
    return -(index + 1)


class CapacitySearch:
    """The probes of one search; ``steps(i)`` reads probe ``i``'s aggregate so far."""

    def __init__(self, settings: Settings, steps: Callable[[int], Aggregate | None]) -> None:
        self.s = settings
        self._steps = steps
        users = settings.search == "users"
        resolution = settings.search_resolution or (1.0 if users else RATE_RESOLUTION)
        self.relative = not users and not settings.search_resolution
        start = 1.0 if users else settings.request_rate
        self.plan = SearchPlan(start, resolution, settings.search_max, users, self.relative)
        self.target = settings.slo_target / 100.0
        self.started_at: float | None = None  # monotonic: the first probe's start
        self.ended_at: float | None = None
        self._probe: Probe | None = None
        self._measured_from = 0.0

    # -- the controller's callbacks ------------------------------------------------------------
    def next_load(self, index: int) -> float | None:
        load = self.plan.next_load()
        now = time.monotonic()
        if self.started_at is None:
            self.started_at = now
        if load is None:
            self.ended_at = now
        return load

    def begin(self, index: int, load: float, warmup_s: float) -> None:
        """Probe ``index`` at ``load`` starts measuring now (its warm-up is over)."""
        self._probe = Probe(load=load, warmup_s=warmup_s)
        self._measured_from = time.monotonic()

    def decided(self, index: int) -> bool:
        """Poll: True (and the probe recorded) once the probe's verdict is known."""
        probe = self._probe
        if probe is None:
            return False  # still warming up
        agg = self._steps(index) or Aggregate()
        probe.met, probe.n = agg.counts["slo_met"], agg.counts["slo_checked"]
        probe.measured_s = measured = time.monotonic() - self._measured_from
        s = self.s
        v = verdict(
            probe.met, probe.n, self.target, measured, s.search_min_time, s.search_min_requests
        )
        if v is not None:
            probe.passed = v == "pass"
            probe.stopped = "decided" if probe.passed else "failure certain"
        elif saturated(ttft_points(agg, time.time()), s.slo.get("ttft_ms")):
            probe.stopped = "saturated"
        elif measured >= s.search_probe_time:
            lo, hi = wilson(probe.met, probe.n)
            probe.passed = probe.n > 0 and probe.met / probe.n >= self.target
            probe.straddles = lo < self.target <= hi
            probe.stopped = "cap"
        else:
            return False
        probe.figures = _figures(agg, measured, s.stream)
        self.plan.probes.append(probe)
        self._probe = None
        return True

    def stop(self) -> None:
        """The run ended mid-probe: keep what it measured, said to be unfinished."""
        if self._probe is not None and self._probe.n:
            probe = self._probe
            probe.measured_s = time.monotonic() - self._measured_from
            probe.passed = probe.met / probe.n >= self.target
            lo, hi = wilson(probe.met, probe.n)
            probe.straddles = lo < self.target <= hi
            probe.stopped = "ended"
            self.plan.probes.append(probe)
        self._probe = None
        if self.ended_at is None and self.started_at is not None:
            self.ended_at = time.monotonic()

    # -- the result -----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The ``search`` object of the summary JSON."""
        lo, hi = self.plan.highest_passing(), self.plan.lowest_failing()
        probes = [p.to_dict() for p in self.plan.probes]
        needed = sum(p.warmup_s + p.measured_s for p in self.plan.probes)
        total = (self.ended_at or time.monotonic()) - (self.started_at or time.monotonic())
        out: dict[str, Any] = {
            "of": self.s.search,
            "slo": dict(self.s.slo),
            "slo_target_percent": self.s.slo_target,
            "confidence": CONFIDENCE,
            "interval": "wilson",
            "resolution": self.plan.resolution,
            "resolution_relative": self.relative,
            "probes": probes,
            "highest_passing": None if lo is None else lo.to_dict(),
            "lowest_failing": None if hi is None else hi.to_dict(),
            "goodput_requests_per_s": None
            if lo is None
            else lo.figures.get("goodput_requests_per_s"),
            "met_slo": lo is not None,
            "search_s": total,
            "probes_needed_s": needed,
            "time_ratio": total / needed if needed else None,
            # The same loads as a sweep of fixed steps (warm-up + the cap each): the time
            # that deciding early saved.
            "fixed_steps_s": len(probes) * (self.s.search_warmup + self.s.search_probe_time),
        }
        if self._probe is not None:  # the probe measuring now, for live views
            current = self._probe.to_dict()
            current["verdict"] = "running"
            current["measured_s"] = time.monotonic() - self._measured_from
            out["current"] = current
        if hi is None and lo is not None:
            out["note"] = f"no probed load failed up to {lo.load:g} (--search-max)"
        bounds = [p for p in (lo, hi) if p is not None and p.straddles]
        if bounds:
            which = " and ".join(f"{p.load:g}" for p in bounds)
            out["warning"] = (
                f"the {CONFIDENCE:.0%} interval of the probe at {which} straddles the "
                f"{self.s.slo_target:g} % target: that bound rests on its point estimate"
            )
        return out


def ttft_points(agg: Aggregate, now_wall: float) -> list[tuple[float, float]]:
    """(second, TTFT p50 ms) of the probe's whole seconds so far (the current one is partial)."""
    points = []
    for start in sorted(agg.timeline):
        bucket = agg.timeline[start]
        if start + agg.timeline_step > now_wall:
            continue
        p50 = bucket.ttft.percentile(50)
        if p50 is not None:
            points.append((float(start), float(p50)))
    return points


def _figures(agg: Aggregate, measured_s: float, stream: bool) -> dict[str, Any]:
    seconds = max(measured_s, 1e-9)
    h = agg.hist["ttft_ms"] if stream else agg.hist["latency_ms"]
    return {
        "requests": agg.requests,
        "failures": agg.failed,
        "requests_per_s": agg.requests / seconds,
        "goodput_requests_per_s": agg.counts["slo_met"] / seconds,
        "output_tokens_per_s": agg.sums["output_tokens"] / seconds,
        # prompt tokens come from the server's usage: none reported, no total
        "total_tokens_per_s": (agg.sums["output_tokens"] + agg.sums["prompt_tokens"]) / seconds
        if agg.sums["prompt_tokens"]
        else None,
        "ttft_p50_ms": h.percentile(50) if stream else None,
        "ttft_p99_ms": h.percentile(99) if stream else None,
        "e2e_p99_ms": (agg.hist["e2e_ms"] if stream else h).percentile(99),
    }
