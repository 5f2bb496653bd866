"""The capacity search's arithmetic: SLO attainment with a Wilson interval, a probe's verdict,
the over-saturation detector, and the next load to probe (double, then bisect).

No gevent, no Locust: the plugin's run control feeds it counts and per-second TTFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONFIDENCE",
    "Probe",
    "SearchPlan",
    "saturated",
    "ttft_slope",
    "verdict",
    "wilson",
]

CONFIDENCE = 0.95  # of every interval the search states
_Z = 1.959963984540054  # two-sided 95 % normal quantile
# Two-sided 95 % Student t quantiles by degrees of freedom (1..30); beyond, the normal's.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
SATURATION_MIN_POINTS = 5  # seconds of TTFT before a slope is trusted


def wilson(met: int, n: int, z: float = _Z) -> tuple[float, float]:
    """Wilson score interval of the proportion ``met / n`` (95 % by default); (0, 1) for n=0.

    Unlike the normal approximation it stays inside [0, 1] and is honest at 0 % and 100 %:
    40 of 40 gives a lower end of 0.912, not 1.
    """
    if n <= 0:
        return 0.0, 1.0
    p = met / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _t95(df: int) -> float:
    return _T95[df - 1] if 1 <= df <= len(_T95) else _Z


def ttft_slope(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares slope of TTFT (ms) over time (s), and its 95 % margin of error
    (t quantile x standard error); None with fewer than 3 points or no spread in time."""
    n = len(points)
    if n < 3:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in points)
    se = math.sqrt(resid / (n - 2) / sxx)
    return slope, _t95(n - 2) * se


def saturated(points: list[tuple[float, float]], ttft_limit_ms: float | None) -> bool:
    """Over-saturation: the server's queue grows, so TTFT climbs without bound.

    ``points``: (second, TTFT p50 in ms) of the probe after its warm-up, one per second.
    Saturated when, over at least :data:`SATURATION_MIN_POINTS` seconds, the least-squares
    slope of TTFT is positive beyond its 95 % margin of error, and the fitted TTFT at the
    last second is over ``ttft_limit_ms`` (the TTFT SLO) or, without one, twice the fitted
    TTFT at the first second.
    """
    if len(points) < SATURATION_MIN_POINTS:
        return False
    fit = ttft_slope(points)
    if fit is None:
        return False
    slope, margin = fit
    if slope - margin <= 0:
        return False
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    first = my + slope * (points[0][0] - mx)
    last = my + slope * (points[-1][0] - mx)
    if ttft_limit_ms is not None:
        return last > ttft_limit_ms
    return last > 2 * max(first, 1e-9)


def verdict(
    met: int, n: int, target: float, measured_s: float, min_s: float, min_requests: int
) -> str | None:
    """``pass`` once the interval's lower end reaches ``target`` (a fraction) after
    ``min_s`` seconds and ``min_requests`` requests; ``fail`` as soon as its upper end is
    below it (with ``min_requests``: failure is certain, no need to wait); else None."""
    if n < max(min_requests, 1):
        return None
    lo, hi = wilson(met, n)
    if hi < target:
        return "fail"
    if lo >= target and measured_s >= min_s:
        return "pass"
    return None


@dataclass
class Probe:
    """One load probed: its counts and how it ended."""

    load: float
    met: int = 0
    n: int = 0
    passed: bool = False
    straddles: bool = False  # the interval holds the target: a bound only by its point estimate
    stopped: str = ""  # decided, failure certain, saturated, cap, ended
    warmup_s: float = 0.0
    measured_s: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def attainment(self) -> float | None:
        return self.met / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        lo, hi = wilson(self.met, self.n)
        a = self.attainment
        return {
            "load": self.load,
            "verdict": "pass" if self.passed else "fail",
            "attainment_percent": None if a is None else 100.0 * a,
            "interval_percent": [100.0 * lo, 100.0 * hi],
            "requests_checked": self.n,
            "requests_meeting_slo": self.met,
            "straddles_target": self.straddles,
            "stopped": self.stopped,
            "warmup_s": self.warmup_s,
            "measured_s": self.measured_s,
            **self.figures,
        }


class SearchPlan:
    """Which load to probe next: 1, 2, 4, ... until one fails (or ``max_load``), then the
    midpoint of the highest pass and the lowest fail, until they are ``resolution`` apart
    (``relative``: a fraction of the passing load, for rates). ``whole``: loads are integers
    (users)."""

    def __init__(
        self,
        start: float,
        resolution: float,
        max_load: float,
        whole: bool = True,
        relative: bool = False,
    ) -> None:
        self.start, self.resolution, self.max_load = start, resolution, max_load
        self.whole, self.relative = whole, relative
        self.probes: list[Probe] = []

    def _best(self) -> tuple[Probe | None, Probe | None]:
        passed = [p for p in self.probes if p.passed]
        failed = [p for p in self.probes if not p.passed]
        lo = max(passed, key=lambda p: p.load) if passed else None
        hi = min(failed, key=lambda p: p.load) if failed else None
        return lo, hi

    def highest_passing(self) -> Probe | None:
        return self._best()[0]

    def lowest_failing(self) -> Probe | None:
        return self._best()[1]

    def next_load(self) -> float | None:
        """The next load, or None when the search is over."""
        if not self.probes:
            return self.start
        lo, hi = self._best()
        if hi is None:  # still doubling
            if lo is None or lo.load >= self.max_load:
                return None
            return min(lo.load * 2, self.max_load)
        if lo is None or hi.load <= lo.load:
            return None  # the smallest load failed (or results cross: stop, say so)
        step = self.resolution * lo.load if self.relative else self.resolution
        if hi.load - lo.load <= step + 1e-9:
            return None
        mid = (lo.load + hi.load) / 2
        if self.whole:
            mid = float(math.floor(mid))
            if mid <= lo.load:
                return None
        return mid
