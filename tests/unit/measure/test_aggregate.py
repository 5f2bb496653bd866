"""The aggregate: sums, counters and histograms that merge exactly across users and workers."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from llm_users.measure.aggregate import HISTOGRAMS, Aggregate
from llm_users.measure.per_request import RequestResult, TokenSource

T0 = 1_700_000_000.0  # wall clock of the first request


def stream_result(ttft: float = 100.0, follow: float = 500.0, tokens: int = 5, **kw: Any
                  ) -> RequestResult:  # fmt: skip
    base: dict[str, Any] = dict(
        endpoint="chat", stream=True, ok=True, start_wall=T0, e2e_ms=ttft + follow, status=200,
        ttft_ms=ttft, ttfc_ms=ttft, follow_latency_ms=follow, follow_tokens=tokens,
        follow_source=TokenSource.USAGE, output_tokens=tokens + 1, output_source=TokenSource.USAGE,
        prompt_tokens=20, usage_completion_tokens=tokens + 1, tpot_ms=follow / tokens,
        itl_ms=[follow / tokens] * tokens, token_events=tokens + 1, max_tokens=128,
        finish_reason="stop",
    )  # fmt: skip
    base.update(kw)
    return RequestResult(**base)


def plain_result(latency: float = 2000.0, total: int = 74, **kw: Any) -> RequestResult:
    base: dict[str, Any] = dict(
        endpoint="chat", stream=False, ok=True, start_wall=T0, e2e_ms=latency, status=200,
        output_tokens=total - 20, output_source=TokenSource.USAGE, prompt_tokens=20,
        total_tokens=total, usage_completion_tokens=total - 20, max_tokens=128,
    )  # fmt: skip
    base.update(kw)
    return RequestResult(**base)


def failed_result(kind: str = "http_500", message: str = "HTTP 500: boom", **kw: Any
                  ) -> RequestResult:  # fmt: skip
    base: dict[str, Any] = dict(endpoint="chat", stream=True, ok=False, start_wall=T0,
                                e2e_ms=30.0, status=500, failure=kind, message=message)  # fmt: skip
    base.update(kw)
    return RequestResult(**base)


def agg_of(results: list[RequestResult]) -> Aggregate:
    a = Aggregate()
    for r in results:
        a.add(r)
    return a


def canon(x: Any) -> Any:
    """A comparable form of a to_dict(): histogram buckets sorted, float sums rounded (they
    are added in a different order when merged)."""
    if isinstance(x, dict):
        if {"b", "c", "n", "s"} <= set(x):  # a histogram's wire form
            return ("hist", sorted(zip(x["b"], x["c"], strict=True)), x["n"], round(x["s"], 6),
                    x.get("lo"), x.get("hi"))  # fmt: skip
        return {k: canon(v) for k, v in x.items()}
    if isinstance(x, list):
        return [canon(v) for v in x]
    if isinstance(x, float):
        return round(x, 6)
    return x


def same_figures(a: Aggregate, b: Aggregate, results: list[RequestResult]) -> None:
    """Equal in every figure. Which example message a kind keeps depends on the order the
    parts arrive in: only require one real message of that kind on both sides."""
    da, db = a.to_dict(), b.to_dict()
    ea, eb = da.pop("failure_examples"), db.pop("failure_examples")
    assert canon(da) == canon(db)
    seen: dict[str, set[str]] = {}
    for r in results:
        if not r.ok:
            seen.setdefault(r.failure or "unknown", set()).add(r.message or "")
    assert set(ea) == set(eb) == set(seen)
    assert all(ea[k] in seen[k] and eb[k] in seen[k] for k in seen)


def wire(a: Aggregate) -> Aggregate:
    """Through the master/worker wire format, as strict JSON."""
    return Aggregate.from_dict(json.loads(json.dumps(a.to_dict(), allow_nan=False)))


# -- adding --------------------------------------------------------------------------------


def test_streaming_results_with_hand_numbers() -> None:
    a = agg_of([stream_result(ttft=100.0, follow=500.0, tokens=5),
                stream_result(ttft=300.0, follow=1500.0, tokens=15)])  # fmt: skip
    assert a.requests == 2 and a.failed == 0
    assert a.counts["stream_ok"] == 2 and a.counts["nonstream_ok"] == 0
    assert a.mean("ttft_ms", "stream_ok") == 200.0
    assert a.mean("follow_latency_ms", "stream_ok") == 1000.0
    assert a.mean("follow_tokens", "stream_ok") == 10.0
    assert a.mean("follow_speed", "stream_ok") == 10.0  # 5/0.5 s and 15/1.5 s: 10 tokens/s each
    assert a.sums["output_tokens"] == 6 + 16
    assert a.hist["ttft_ms"].count == 2 and a.hist["ttft_ms"].max == 300.0
    assert a.hist["e2e_ms"].count == 2 and a.hist["e2e_ms"].max == 1800.0
    assert a.hist["tpot_ms"].count == 2 and a.hist["tpot_ms"].mean == 100.0
    assert a.hist["itl_ms"].count == 5 + 15  # one sample per gap
    assert a.hist["latency_ms"].count == 0  # the non-streaming histogram
    assert a.sources == {TokenSource.USAGE: 2}


def test_non_streaming_results_with_hand_numbers() -> None:
    a = agg_of([plain_result(latency=2000.0, total=74), plain_result(latency=4000.0, total=74)])
    assert a.counts["nonstream_ok"] == 2
    assert a.mean("latency_ms", "nonstream_ok") == 3000.0
    assert a.mean("total_tokens", "nonstream_ok") == 74.0
    assert a.mean("speed", "nonstream_ok") == (37.0 + 18.5) / 2
    assert a.hist["latency_ms"].count == 2
    assert a.hist["ttft_ms"].count == a.hist["e2e_ms"].count == 0


def test_mean_of_nothing_is_none() -> None:
    assert Aggregate().mean("ttft_ms", "stream_ok") is None


def test_short_outputs_and_token_count_check() -> None:
    a = agg_of([
        stream_result(tokens=5, max_tokens=128, tokenizer_output_tokens=8),  # usage 6: diff 2
        stream_result(tokens=127, max_tokens=128, tokenizer_output_tokens=128),  # diff 0
        stream_result(tokens=5, max_tokens=None),
    ])  # fmt: skip
    assert a.counts["with_max_tokens"] == 2
    assert a.counts["short_outputs"] == 1  # 6 < 128; 128 is not short
    assert a.counts["token_compared"] == 2
    assert a.sums["token_diff_abs"] == 2 and a.token_diff_max == 2


def test_queue_delay_is_recorded_only_when_present() -> None:
    a = agg_of([stream_result(queue_delay_ms=12.5), stream_result()])
    assert a.hist["queue_delay_ms"].count == 1 and a.hist["queue_delay_ms"].max == 12.5


def test_measured_period_spans_first_start_to_last_end() -> None:
    a = agg_of([
        plain_result(start_wall=T0 + 1.0, e2e_ms=500.0),  # ends at +1.5
        failed_result(start_wall=T0 + 2.0, e2e_ms=1000.0),  # failures count: ends at +3.0
        plain_result(start_wall=T0, e2e_ms=250.0),
    ])  # fmt: skip
    assert a.first_start == T0
    assert a.last_end == T0 + 3.0
    assert a.duration_s == 3.0


# -- failures ------------------------------------------------------------------------------


def test_failures_never_enter_histograms_or_sums() -> None:
    # even a failure that carries figures (a stream cut after some tokens) adds none of them
    bad = failed_result(ttft_ms=50.0, ttfc_ms=50.0, follow_latency_ms=10.0, tpot_ms=5.0,
                        itl_ms=[5.0, 5.0], output_tokens=3, follow_tokens=2,
                        queue_delay_ms=1.0, e2e_ms=60.0)  # fmt: skip
    a = agg_of([bad, failed_result(stream=False, total_tokens=10, e2e_ms=9.0)])
    assert a.requests == 0 and a.failed == 2
    assert all(a.hist[name].count == 0 for name in HISTOGRAMS)
    assert all(v == 0 for v in a.sums.values())
    assert all(v == 0 for v in a.counts.values())
    assert not a.sources
    assert not a.empty


def test_failures_are_counted_per_kind_with_the_first_example_kept() -> None:
    a = agg_of([
        failed_result("http_429", "HTTP 429: rate limited"),
        failed_result("http_429", "HTTP 429: second message"),
        failed_result("truncated_stream", "stream ended with no [DONE]"),
        failed_result(None, None),
    ])  # fmt: skip
    assert a.failures == {"http_429": 2, "truncated_stream": 1, "unknown": 1}
    assert a.failure_examples == {
        "http_429": "HTTP 429: rate limited",
        "truncated_stream": "stream ended with no [DONE]",
        "unknown": "",
    }
    assert a.failed == 4


def test_merge_keeps_an_example_per_kind_from_either_side() -> None:
    a = agg_of([failed_result("http_500", "first")])
    b = agg_of([failed_result("http_500", "later"), failed_result("connect_error", "refused")])
    a.merge(b)
    assert a.failures == {"http_500": 2, "connect_error": 1}
    assert a.failure_examples == {"http_500": "first", "connect_error": "refused"}


# -- merging and the wire format -----------------------------------------------------------


def random_results(seed: int, n: int = 300) -> list[RequestResult]:
    rng = random.Random(seed)
    out: list[RequestResult] = []
    for i in range(n):
        start = T0 + rng.uniform(0, 60)
        roll = rng.random()
        if roll < 0.15:
            kind = rng.choice(["http_500", "http_429", "truncated_stream", "connect_error"])
            out.append(failed_result(kind, f"{kind} #{i}", start_wall=start,
                                     e2e_ms=rng.uniform(1, 500)))  # fmt: skip
        elif roll < 0.6:
            tokens = rng.randint(1, 64)
            out.append(stream_result(
                ttft=rng.lognormvariate(5, 0.5), follow=rng.uniform(100, 5000), tokens=tokens,
                start_wall=start, tokenizer_output_tokens=tokens + rng.randint(-2, 2) + 1,
                follow_source=rng.choice([TokenSource.TOKENIZER, TokenSource.USAGE]),
                queue_delay_ms=rng.uniform(0, 5) if rng.random() < 0.3 else None,
            ))  # fmt: skip
        else:
            out.append(plain_result(latency=rng.uniform(200, 8000), total=rng.randint(21, 300),
                                    start_wall=start))  # fmt: skip
    return out


@pytest.mark.parametrize("seed", range(3))
def test_merged_parts_equal_adding_everything_into_one(seed: int) -> None:
    results = random_results(seed)
    whole = agg_of(results)
    rng = random.Random(seed + 1000)
    parts: list[list[RequestResult]] = [[], [], []]
    for r in results:
        rng.choice(parts).append(r)
    merged = Aggregate()
    for part in parts:
        merged.merge(wire(agg_of(part)))  # each "worker" sends its aggregate over the wire
    same_figures(merged, whole, results)
    assert merged.requests + merged.failed == len(results)
    for name in HISTOGRAMS:
        for p in (50, 90, 99):
            assert merged.hist[name].percentile(p) == whole.hist[name].percentile(p)


def test_to_dict_from_dict_round_trip() -> None:
    a = agg_of(random_results(7, 100))
    back = wire(a)
    assert canon(back.to_dict()) == canon(a.to_dict())
    assert back.duration_s == a.duration_s
    assert back.failure_examples == a.failure_examples
    assert back.hist["ttft_ms"].summary() == a.hist["ttft_ms"].summary()


def test_empty_aggregate_round_trip_and_merge() -> None:
    empty = wire(Aggregate())
    assert empty.empty and empty.duration_s == 0.0 and empty.first_start is None
    a = agg_of(random_results(3, 50))
    before = canon(a.to_dict())
    a.merge(empty)
    assert canon(a.to_dict()) == before
    fresh = Aggregate()
    fresh.merge(a)
    assert canon(fresh.to_dict()) == before


def test_merging_is_order_independent() -> None:
    r1, r2 = random_results(11, 80), random_results(12, 80)
    ab, ba = agg_of(r1), agg_of(r2)
    ab.merge(agg_of(r2))
    ba.merge(agg_of(r1))
    same_figures(ab, ba, r1 + r2)


def test_the_time_series_stays_bounded_and_conserves_counts():
    from llm_users.measure.aggregate import MAX_BUCKETS

    agg = Aggregate()
    start = 1_800_000_000.0
    for second in range(3 * MAX_BUCKETS):  # three hours, one request a second
        agg.add(
            RequestResult(
                endpoint="chat",
                stream=True,
                ok=True,
                start_wall=start + second,
                e2e_ms=100.0,
                ttft_ms=10.0,
                output_tokens=7,
                token_events=7,
            )
        )
    assert len(agg.timeline) <= MAX_BUCKETS and agg.timeline_step == 4
    rows = agg.timeseries()
    assert len(rows) == 3 * MAX_BUCKETS  # still one row per second for the charts
    assert sum(r["output_tokens_per_s"] for r in rows) == 7 * 3 * MAX_BUCKETS
    assert sum(r["requests"] for r in rows) == 3 * MAX_BUCKETS
    merged = Aggregate()
    merged.merge(Aggregate.from_dict(agg.to_dict()))
    assert (
        merged.timeline_step == 4 and sum(b.ok for b in merged.timeline.values()) == 3 * MAX_BUCKETS
    )
