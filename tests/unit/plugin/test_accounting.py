"""Counting finished requests off the read path: deferred, bounded, flushed at the end."""

from __future__ import annotations

import gevent

from llm_users.plugin.accounting import Accounting, when_idle
from llm_users.record import RequestRecord


def _rec(n: int) -> RequestRecord:
    return RequestRecord(endpoint="chat", stream=True, start=float(n), start_wall=0.0)


def test_without_the_greenlet_records_are_counted_at_once() -> None:
    got: list[tuple[float, int]] = []
    acc = Accounting(lambda r, s: got.append((r.start, s)))
    acc.submit(_rec(1), 3)
    assert got == [(1.0, 3)]


def test_records_wait_for_an_idle_loop_and_keep_their_order() -> None:
    got: list[tuple[float, int]] = []
    acc = Accounting(lambda r, s: got.append((r.start, s)))
    acc.start()
    try:
        for i in range(3):
            acc.submit(_rec(i), i)
        assert got == [] and acc.pending == 3  # the user goes on: nothing counted yet
        gevent.sleep(0.05)  # the loop idles: the greenlet counts them, one per idle turn
        assert got == [(0.0, 0), (1.0, 1), (2.0, 2)] and acc.deferred == 3
    finally:
        acc.stop()


def test_a_backlog_is_counted_by_the_user_and_stop_flushes_the_rest() -> None:
    got: list[float] = []
    acc = Accounting(lambda r, s: got.append(r.start), backlog=2)
    acc.start()
    for i in range(5):
        acc.submit(_rec(i))
    assert got == [0.0, 1.0, 2.0] and acc.pending == 2  # bounded: the oldest counted inline
    acc.stop()  # test stop: the last records are counted before the summary
    assert got == [0.0, 1.0, 2.0, 3.0, 4.0] and not acc.running
    acc.submit(_rec(5))
    assert got[-1] == 5.0  # after the stop: inline again


def test_the_backlog_is_bounded_in_tokens_too() -> None:
    """Each waiting record holds its tokens' texts and times: long answers are counted by
    the user once the waiting ones hold more than ``backlog_tokens``."""
    got: list[float] = []
    acc = Accounting(lambda r, s: got.append(r.start), backlog_tokens=250)
    acc.start()
    try:
        for i in range(4):
            rec = _rec(i)
            rec.token_times = [0.0] * 100
            acc.submit(rec)
        assert got == [0.0, 1.0] and acc.pending == 2 and acc.tokens == 200
        big = _rec(9)
        big.token_times = [0.0] * 1000  # over the bound alone: counted at once
        acc.submit(big)
        assert got == [0.0, 1.0, 2.0, 3.0, 9.0] and acc.pending == 0 and acc.tokens == 0
        whole = _rec(10)  # a whole (non-streamed) response: no token times, one text
        whole.texts = ["x" * 400]
        acc.submit(whole)
        assert acc.pending == 1 and acc.tokens == 100
        whole = _rec(11)
        whole.texts = ["x" * 4000]  # ~1,000 tokens: over the bound alone
        acc.submit(whole)
        assert got[-2:] == [10.0, 11.0] and acc.pending == 0 and acc.tokens == 0
    finally:
        acc.stop()


def test_a_failing_count_does_not_stop_the_others(caplog) -> None:  # type: ignore[no-untyped-def]
    got: list[float] = []

    def complete(r: RequestRecord, _s: int) -> None:
        if r.start == 1.0:
            raise ValueError("a listener's bug")
        got.append(r.start)

    acc = Accounting(complete)
    acc.start()
    try:
        for i in range(3):
            acc.submit(_rec(i))
        gevent.sleep(0.05)
        assert got == [0.0, 2.0]
        assert "counting a finished request failed" in caplog.text
    finally:
        acc.stop()


def test_when_idle_returns_by_its_deadline_even_if_the_loop_stays_busy() -> None:
    def busy() -> None:
        while True:
            gevent.sleep(0.0005)  # a timer due every half millisecond

    g = gevent.spawn(busy)
    try:
        with gevent.Timeout(1.0):
            when_idle(0.01)
    finally:
        g.kill()


def test_stop_never_interrupts_a_count_that_yields() -> None:
    got: list[float] = []

    def complete(r: RequestRecord, _s: int) -> None:
        gevent.sleep(0.02)  # e.g. a long text counted in the thread pool
        got.append(r.start)

    acc = Accounting(complete)
    acc.start()
    for i in range(3):
        acc.submit(_rec(i))
    gevent.sleep(0.005)  # the greenlet is inside the first count
    acc.stop()
    assert got == [0.0, 1.0, 2.0]  # none lost, none counted twice
