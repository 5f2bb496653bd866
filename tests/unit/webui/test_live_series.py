"""The web UI's time series: each point's rates and percentiles are those of its own window."""

from __future__ import annotations

import pytest

from llm_users.measure.aggregate import Aggregate
from llm_users.measure.histogram import Histogram
from llm_users.measure.per_request import RequestResult
from llm_users.webui.live_series import FIELDS, LiveSeries


def done(ttft: float, gaps: list[float], tokens: int = 10, ok: bool = True) -> RequestResult:
    return RequestResult(endpoint="chat", stream=True, ok=ok, start_wall=0.0,
                         e2e_ms=ttft + sum(gaps), ttft_ms=ttft if ok else None,
                         itl_ms=gaps if ok else [], output_tokens=tokens if ok else None,
                         failure=None if ok else "http_500")  # fmt: skip


def test_points_describe_their_own_window() -> None:
    agg, live = Aggregate(), LiveSeries(window_s=2.0, max_points=10)
    live.sample(agg, users=0, now=100.0)  # the baseline: no point yet
    assert live.columns()["t"] == []
    for ttft in (100.0, 110.0, 120.0):  # window 1: 3 requests
        agg.add(done(ttft, [10.0] * 4))
    live.sample(agg, users=3, now=102.0)
    window2 = [500.0, 600.0, 700.0]
    for ttft in window2:
        agg.add(done(ttft, [30.0, 50.0]))
    agg.add(done(0.0, [], ok=False))
    live.sample(agg, users=4, now=104.0)
    cols = live.columns()
    assert set(cols) == set(FIELDS) and cols["t"] == [102.0, 104.0]
    assert cols["users"] == [3, 4]
    assert cols["requests_per_s"] == [1.5, 1.5] and cols["failures_per_s"] == [0.0, 0.5]
    assert cols["output_tokens_per_s"] == [15.0, 15.0]
    for i, ttfts in enumerate(([100.0, 110.0, 120.0], window2)):
        ref = Histogram()
        ref.record_many(ttfts)  # this window's TTFT alone, not the run's
        assert cols["ttft_p50_ms"][i] == ref.percentile(50) == pytest.approx(ttfts[1], rel=5e-4)
        assert cols["ttft_p99_ms"][i] == ref.percentile(99) == pytest.approx(ttfts[-1], rel=5e-4)
    assert cols["itl_p50_ms"] == [10.0, pytest.approx(30.0, rel=5e-4)]  # within the bucket
    assert cols["itl_p99_ms"] == [10.0, pytest.approx(50.0, rel=5e-4)]
    # in flight: durations of the requests that ended, per second of the window
    assert cols["in_flight"][0] == (330.0 + 40.0 * 3) / 1000.0 / 2.0
    assert cols["latency_p50_ms"] == [None, None]  # no non-streaming request


def test_a_longer_window_spans_several_samples_and_memory_is_bounded() -> None:
    agg, live = Aggregate(), LiveSeries(window_s=6.0, max_points=5)
    for i in range(20):
        agg.add(done(100.0 + i, [10.0]))
        live.sample(agg, users=1, now=1000.0 + 2 * i)
    cols = live.columns()
    assert len(cols["t"]) == 5  # bounded
    assert cols["requests_per_s"][-1] == 3 / 6.0  # the last 6 s: three samples of one request
    assert len(live._snaps) <= 4
