"""Backoff after connection errors and the union of unreachable spans (plugin/backoff.py)."""

from __future__ import annotations

import random

from llm_users.measure.tally import MAX_SPANS, Tally
from llm_users.plugin.backoff import Backoff, Reachability
from llm_users.record import RequestRecord


def rec(failure: str | None = None, status: int = 0, wall: float = 100.0) -> RequestRecord:
    r = RequestRecord(endpoint="chat", stream=True, start=0.0, start_wall=wall, status=status)
    r.failure = failure
    return r


def test_waits_double_to_the_cap_within_their_jitter_and_reset_on_a_response() -> None:
    b = Backoff(random.Random(1))
    waits = [b.after(rec("connect_error")) for _ in range(9)]
    bounds = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    assert all(w / 2 <= got <= w for got, w in zip(waits, bounds, strict=True))
    assert b.after(rec("http_500", status=500)) == 0.0  # the server answered
    assert 0.025 <= b.after(rec("connection_reset")) <= 0.05  # from the start again
    assert b.after(rec("connection_reset", status=200)) == 0.0  # reset after a response: no


def test_spans_are_joined_across_workers_and_bounded() -> None:
    a, b = Tally(), Tally()
    a.add_unreachable(10, 14)
    b.add_unreachable(12, 16)  # the same outage seen by another worker
    b.add_unreachable(20, 21)
    a.merge(b)
    assert a.unreachable == [(10, 16), (20, 21)] and a.unreachable_s == 7
    assert Tally.from_dict(a.to_dict()).unreachable == a.unreachable
    many = Tally()
    for i in range(MAX_SPANS + 10):
        many.add_unreachable(i * 10, i * 10 + 1)
    assert len(many.unreachable) == MAX_SPANS and many.unreachable[0][0] == 0


def test_reachability_opens_on_no_connection_and_closes_on_a_response() -> None:
    t, reach = Tally(), Reachability()
    reach.observe(rec("connect_error", wall=50.0), t)
    reach.observe(rec("connect_error", wall=51.0), t)
    assert t.unreachable == [] and reach.since_unix == 50.0
    reach.observe(rec(None, status=200), t)
    assert len(t.unreachable) == 1 and t.unreachable[0][0] == 50.0 and reach.since_unix is None
