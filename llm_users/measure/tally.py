"""The figures of a run as one mergeable unit: the whole run, its steady window, each sweep
step, the loop lag.

A local or master process keeps one :class:`Tally` for the whole test; a worker keeps one of
what finished since its last report to the master (a delta). Deltas never overlap, so adding
them gives the whole run exactly. Loop lag is a field of its own, not a request figure.
"""

from __future__ import annotations

from typing import Any

from .aggregate import Aggregate
from .histogram import Histogram
from .per_request import RequestResult
from .turns import TurnTally

__all__ = ["Tally"]

_STAMP_KEYS = ("kernel", "user", "clock_steps", "uncertainty_us")


class Tally:
    def __init__(self) -> None:
        self.total = Aggregate()
        self.steps: dict[int, Aggregate] = {}
        self.steady = Aggregate()  # requests inside the steady window (the load at its target)
        self.lag = Histogram()  # how late the client's event loop woke (timing uncertainty)
        self.warmup = Aggregate()  # requests that started in the warm-up: in no figure
        self.turns = TurnTally()  # conversations: per turn index
        # What timed the requests: counts by source, clock steps, the largest offset
        # uncertainty of the kernel clock (microseconds).
        self.stamps: dict[str, float] = dict.fromkeys(_STAMP_KEYS, 0)
        # Spans (unix s) in which the server could not be reached: merged as a union, so
        # workers that saw the same outage count it once.
        self.unreachable: list[tuple[float, float]] = []

    def add_unreachable(self, start_unix: float, end_unix: float) -> None:
        self.unreachable = _union([*self.unreachable, (start_unix, max(start_unix, end_unix))])

    @property
    def unreachable_s(self) -> float:
        return sum(end - start for start, end in self.unreachable)

    def count_stamps(self, source: str, clock_step: bool, uncertainty_us: float) -> None:
        st = self.stamps
        st["kernel" if source == "kernel" else "user"] += 1
        st["clock_steps"] += clock_step
        if uncertainty_us > st["uncertainty_us"]:
            st["uncertainty_us"] = uncertainty_us

    def add(self, res: RequestResult, step: int | None = None) -> None:
        """Count one result; with ``step`` (a sweep), in that step too. A warm-up result
        is counted only as warm-up."""
        if res.warmup:
            self.warmup.add(res)
            return
        self.total.add(res)
        if step is not None:
            self.step(step).add(res)
        if res.turn is not None and not res.cancelled:
            self.turns.add(res)

    def step(self, index: int) -> Aggregate:
        agg = self.steps.get(index)
        if agg is None:
            agg = self.steps[index] = Aggregate()
        return agg

    def step_requests(self, index: int) -> int:
        """Requests of a sweep step so far, ok or failed."""
        agg = self.steps.get(index)
        return agg.requests + agg.failed if agg is not None else 0

    def merge(self, other: Tally) -> None:
        self.total.merge(other.total)
        self.steady.merge(other.steady)
        for i, agg in other.steps.items():
            self.step(i).merge(agg)
        self.lag.merge(other.lag)
        self.warmup.merge(other.warmup)
        self.turns.merge(other.turns)
        if other.unreachable:
            self.unreachable = _union(self.unreachable + other.unreachable)
        for k, v in other.stamps.items():
            if k == "uncertainty_us":
                self.stamps[k] = max(self.stamps[k], v)
            else:
                self.stamps[k] = self.stamps.get(k, 0) + v

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total.to_dict(),
            "steady": self.steady.to_dict(),
            "steps": {str(i): a.to_dict() for i, a in self.steps.items()},
            "loop_lag_ms": self.lag.to_dict(),
            "warmup": self.warmup.to_dict(),
            "turns": self.turns.to_dict(),
            "stamps": dict(self.stamps),
            "unreachable": [list(span) for span in self.unreachable],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        t = cls()
        t.total = Aggregate.from_dict(data["total"])
        if "steady" in data:
            t.steady = Aggregate.from_dict(data["steady"])
        t.steps = {int(i): Aggregate.from_dict(a) for i, a in data.get("steps", {}).items()}
        if "loop_lag_ms" in data:
            t.lag = Histogram.from_dict(data["loop_lag_ms"])
        if "warmup" in data:
            t.warmup = Aggregate.from_dict(data["warmup"])
        if "turns" in data:
            t.turns = TurnTally.from_dict(data["turns"])
        t.stamps.update({k: v for k, v in data.get("stamps", {}).items() if k in _STAMP_KEYS})
        t.unreachable = _union([(float(a), float(b)) for a, b in data.get("unreachable", [])])
        return t


MAX_SPANS = 256  # past this, the closest spans are joined: a flapping server stays bounded


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping spans joined, in order; at most MAX_SPANS (the smallest gaps closed)."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    while len(out) > MAX_SPANS:
        i = min(range(len(out) - 1), key=lambda j: out[j + 1][0] - out[j][1])
        out[i : i + 2] = [(out[i][0], out[i + 1][1])]
    return out
