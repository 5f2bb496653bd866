"""The capacity search's arithmetic: Wilson intervals by hand, verdicts, the saturation
detector and the order of probes."""

from __future__ import annotations

import math

import pytest

from llm_users.measure.capacity import Probe, SearchPlan, saturated, ttft_slope, verdict, wilson


def test_wilson_by_hand():
    # 8 of 10 at z = 1.96: the centre and half-width of the formula, term by term
    z = 1.959963984540054
    n, p = 10, 0.8
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson(8, 10) == pytest.approx((centre - half, centre + half))
    assert wilson(8, 10)[0] == pytest.approx(0.4902, abs=1e-4)
    assert wilson(40, 40)[0] == pytest.approx(0.9124, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0


def test_verdict_waits_for_time_and_count_but_fails_at_once():
    assert verdict(39, 39, 0.9, 60.0, 10.0, 40) is None  # too few requests
    assert verdict(40, 40, 0.9, 5.0, 10.0, 40) is None  # too soon to pass
    assert verdict(40, 40, 0.9, 10.0, 10.0, 40) == "pass"
    assert verdict(0, 40, 0.9, 0.5, 10.0, 40) == "fail"  # certain: no need to wait
    assert verdict(36, 40, 0.9, 60.0, 10.0, 40) is None  # 90 % inside the interval: undecided


def test_slope_and_saturation():
    flat = [(float(t), 100.0 + (5 if t % 2 else -5)) for t in range(10)]
    slope, margin = ttft_slope(flat)
    assert abs(slope) <= margin  # noise, no trend
    assert not saturated(flat, 50.0)
    climbing = [(float(t), 100.0 + 80.0 * t + (5 if t % 2 else -5)) for t in range(6)]
    slope, margin = ttft_slope(climbing)
    assert slope == pytest.approx(80.0, abs=5) and slope - margin > 0
    assert saturated(climbing, 400.0)  # fitted last second ~500 ms > 400
    assert not saturated(climbing, 1000.0)  # climbing, but still within the SLO
    assert saturated(climbing, None)  # no TTFT SLO: it more than doubled
    assert not saturated(climbing[:4], 400.0)  # too few seconds to trust a slope


def _run(plan: SearchPlan, capacity: float) -> list[float]:
    loads = []
    while (load := plan.next_load()) is not None:
        loads.append(load)
        plan.probes.append(Probe(load=load, passed=load <= capacity))
    return loads


def test_plan_doubles_then_bisects_to_the_resolution():
    plan = SearchPlan(1, 1, 1024)
    assert _run(plan, 5) == [1, 2, 4, 8, 6, 5]
    assert plan.highest_passing().load == 5 and plan.lowest_failing().load == 6
    assert _run(SearchPlan(1, 1, 1024), 0) == [1]  # nothing passes
    assert _run(SearchPlan(1, 1, 16), 100) == [1, 2, 4, 8, 16]  # never fails below the max
    assert _run(SearchPlan(1, 4, 1024), 21)[-1] in (20, 24)


def test_plan_for_rates_stops_at_a_relative_resolution():
    plan = SearchPlan(2.0, 0.05, 1000, whole=False, relative=True)
    _run(plan, 10.0)
    lo, hi = plan.highest_passing().load, plan.lowest_failing().load
    assert lo <= 10.0 < hi and hi - lo <= 0.05 * lo
