"""The web UI's time series: per sample, rates and TTFT/ITL/latency p50 and p99 over a window.

Percentiles come from histogram deltas (the whole-run histograms now, minus a copy taken one
window ago), so they are exact to the histogram's 0.05 % and merge across workers like the
rest. Memory is bounded: a few histogram copies and at most ``max_points`` points.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from ..measure.aggregate import Aggregate
from ..measure.histogram import Histogram

__all__ = ["FIELDS", "LiveSeries"]

_HISTS = (("ttft", "ttft_ms"), ("itl", "itl_ms"), ("latency", "latency_ms"))
FIELDS = (
    "t",  # wall clock, s
    "users",  # Locust's running users
    "in_flight",  # mean requests in flight: durations of the window's requests / window
    "output_tokens_per_s",
    "requests_per_s",
    "failures_per_s",
    *(f"{name}_{p}_ms" for name, _ in _HISTS for p in ("p50", "p99")),
)


@dataclass
class _Snapshot:
    t: float
    tokens: float
    ok: int
    failed: int
    busy_ms: float  # summed durations of the successful requests
    hists: dict[str, Histogram]

    @classmethod
    def of(cls, agg: Aggregate, now: float) -> _Snapshot:
        h = agg.hist
        return cls(
            t=now,
            tokens=agg.sums["output_tokens"],
            ok=agg.requests,
            failed=agg.failed,
            busy_ms=h["e2e_ms"].total + h["latency_ms"].total,
            hists={name: h[key].copy() for name, key in _HISTS},
        )


class LiveSeries:
    """Points over a sliding window, one per :meth:`sample` call after the first."""

    def __init__(self, window_s: float, max_points: int) -> None:
        self.window_s = window_s
        self.points: deque[tuple[float | None, ...]] = deque(maxlen=max_points)
        self._snaps: deque[_Snapshot] = deque()

    def clear(self) -> None:
        self.points.clear()
        self._snaps.clear()

    def sample(self, agg: Aggregate, users: int, now: float) -> None:
        """Add a point: the figures of what ended since the newest snapshot a window old."""
        snap = _Snapshot.of(agg, now)
        old = [s for s in self._snaps if now - s.t >= self.window_s - 0.1]
        base = old[-1] if old else (self._snaps[0] if self._snaps else None)
        self._snaps.append(snap)
        while len(self._snaps) > 1 and now - self._snaps[1].t >= self.window_s - 0.1:
            self._snaps.popleft()  # keep one snapshot at least a window old, none older
        if base is None or now <= base.t:
            return
        dt = now - base.t
        point: list[float | None] = [
            now,
            users,
            (snap.busy_ms - base.busy_ms) / 1000.0 / dt,
            (snap.tokens - base.tokens) / dt,
            (snap.ok - base.ok) / dt,
            (snap.failed - base.failed) / dt,
        ]
        for name, _ in _HISTS:
            window = snap.hists[name].since(base.hists[name])
            point += [window.percentile(50), window.percentile(99)]
        self.points.append(tuple(point))

    def columns(self) -> dict[str, list[Any]]:
        """The points as one list per field of :data:`FIELDS` (missing values are None)."""
        cols: dict[str, list[Any]] = {f: [] for f in FIELDS}
        for point in self.points:
            for f, v in zip(FIELDS, point, strict=True):
                cols[f].append(v)
        return cols
