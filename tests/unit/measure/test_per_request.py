"""Per-request figures from a record, with numbers checkable by hand."""

from __future__ import annotations

from typing import Any

import pytest

from llm_users.measure.per_request import (
    RequestResult,
    TokenSource,
    e2e_ms,
    follow_latency_ms,
    itl_ms,
    result_of,
    tpot_ms,
    ttfc_ms,
    ttft_ms,
)
from llm_users.record import FailureKind, RequestRecord

approx = pytest.approx

# A streamed request: start at 100.000 s, token events at +10, +30, +60, +100 ms, end +110 ms.
START = 100.0
TOKEN_TIMES = [100.010, 100.030, 100.060, 100.100]
TEXTS = ["Hello", " big world", " of", " many tokens here"]  # 1 + 2 + 1 + 3 words
END = 100.110


def words(text: str) -> int:
    """A simple token counter: whitespace-separated words."""
    return len(text.split())


def stream_record(**kw: Any) -> RequestRecord:
    r = RequestRecord(endpoint="chat", stream=True, start=START, start_wall=1_700_000_000.0)
    r.status = 200
    r.token_times = list(TOKEN_TIMES)
    r.texts = list(TEXTS)
    r.first_content_at = TOKEN_TIMES[0]
    r.end = END
    r.finish_reason = "stop"
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def plain_record(**kw: Any) -> RequestRecord:
    r = RequestRecord(endpoint="chat", stream=False, start=START, start_wall=1_700_000_000.0)
    r.status = 200
    r.texts = ["The answer is forty two."]  # 5 words
    r.end = 100.5
    r.usage = {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50}
    r.finish_reason = "stop"
    for k, v in kw.items():
        setattr(r, k, v)
    return r


# -- the small functions -------------------------------------------------------------------


def test_ttft_is_first_token_event_minus_start() -> None:
    assert ttft_ms(stream_record()) == approx(10.0)


def test_ttfc_is_first_content_minus_start() -> None:
    # a reasoning model: reasoning tokens from +10 ms, first content at +60 ms
    r = stream_record(first_content_at=100.060)
    assert ttft_ms(r) == approx(10.0)
    assert ttfc_ms(r) == approx(60.0)


def test_e2e_is_end_minus_start() -> None:
    assert e2e_ms(stream_record()) == approx(110.0)


def test_follow_latency_is_end_minus_first_token() -> None:
    r = stream_record()
    assert follow_latency_ms(r) == approx(100.0)
    # the seed computes it as total - first token latency: the same figure
    assert follow_latency_ms(r) == approx(e2e_ms(r) - ttft_ms(r))


def test_itl_is_one_gap_per_token_event() -> None:
    assert itl_ms(stream_record()) == approx([20.0, 30.0, 40.0])


def test_itl_needs_two_token_events() -> None:
    assert itl_ms(stream_record(token_times=[100.010], texts=["x"])) == []
    assert itl_ms(stream_record(token_times=[], texts=[])) == []


def test_figures_that_do_not_exist_are_none() -> None:
    r = RequestRecord(endpoint="chat", stream=True, start=START, start_wall=0.0)
    assert ttft_ms(r) is None
    assert ttfc_ms(r) is None
    assert e2e_ms(r) is None
    assert follow_latency_ms(r) is None


def test_tpot_is_follow_latency_over_follow_tokens() -> None:
    assert tpot_ms(100.0, 4) == 25.0
    assert tpot_ms(100.0, 0) is None
    assert tpot_ms(None, 4) is None
    assert tpot_ms(100.0, None) is None


# -- result_of, streaming: where follow tokens come from -----------------------------------


def test_streaming_latencies_with_hand_numbers() -> None:
    res = result_of(stream_record())
    assert res.ok and res.stream
    assert res.ttft_ms == approx(10.0)
    assert res.ttfc_ms == approx(10.0)
    assert res.follow_latency_ms == approx(100.0)
    assert res.e2e_ms == approx(110.0)
    assert res.itl_ms == approx([20.0, 30.0, 40.0])
    assert res.token_events == 4
    assert res.finish_reason == "stop"


def test_tokens_by_counting_events_when_there_is_no_tokenizer_nor_usage() -> None:
    res = result_of(stream_record())
    assert res.follow_source == res.output_source == TokenSource.EVENTS
    assert res.follow_tokens == 3  # 4 events, the first one excluded
    assert res.output_tokens == 4
    assert res.tpot_ms == approx(100.0 / 3)
    assert res.speed == approx(3 / 0.1)  # 30 tokens/s


def test_tokens_by_tokenizer_count_the_follow_text() -> None:
    res = result_of(stream_record(), words)
    assert res.follow_source == res.output_source == TokenSource.TOKENIZER
    # first event "Hello" = 1; follow text " big world of many tokens here" = 6
    assert res.follow_tokens == 6
    assert res.output_tokens == res.tokenizer_output_tokens == 7
    assert res.tpot_ms == approx(100.0 / 6)
    assert res.speed == approx(6 / 0.1)  # 60 tokens/s


def test_tokenizer_wins_over_usage_and_both_are_kept() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}
    res = result_of(stream_record(usage=usage), words)
    assert res.follow_source == TokenSource.TOKENIZER
    assert res.tokenizer_output_tokens == 7
    assert res.usage_completion_tokens == 9
    assert (res.prompt_tokens, res.total_tokens) == (12, 21)


def test_tokens_by_usage_with_k_tokens_per_event_are_exact() -> None:
    # 4 events of 3 tokens each: completion 12, the first event's share is 3
    usage = {"prompt_tokens": 12, "completion_tokens": 12, "total_tokens": 24}
    res = result_of(stream_record(usage=usage))
    assert res.follow_source == res.output_source == TokenSource.USAGE
    assert res.follow_tokens == 12 - 3
    assert res.output_tokens == 12
    assert res.tpot_ms == approx(100.0 / 9)
    assert res.speed == approx(9 / 0.1)  # 90 tokens/s


def test_usage_with_one_token_per_event_gives_events_minus_one() -> None:
    res = result_of(stream_record(usage={"completion_tokens": 4}))
    assert res.follow_source == TokenSource.USAGE
    assert res.follow_tokens == 3 and res.output_tokens == 4


def test_usage_smaller_than_the_event_count_never_goes_negative() -> None:
    res = result_of(stream_record(usage={"completion_tokens": 2}))
    assert res.follow_tokens is not None and 0 <= res.follow_tokens <= 2
    assert res.output_tokens == 2


@pytest.mark.parametrize("bad", [None, -1, True, "12", 12.0])
def test_unusable_usage_counts_fall_back_to_events(bad: Any) -> None:
    res = result_of(stream_record(usage={"completion_tokens": bad}))
    assert res.usage_completion_tokens is None
    assert res.follow_source == TokenSource.EVENTS
    assert res.follow_tokens == 3


def test_total_tokens_from_prompt_plus_completion_when_total_is_missing() -> None:
    res = result_of(stream_record(usage={"prompt_tokens": 10, "completion_tokens": 4}))
    assert res.total_tokens == 14


def test_single_event_stream_has_no_itl_and_no_tpot() -> None:
    r = stream_record(token_times=[100.010], texts=["Hello world"], end=100.015)
    res = result_of(r, words)
    assert res.itl_ms == []
    assert res.follow_tokens == 0
    assert res.output_tokens == 2
    assert res.tpot_ms is None
    assert res.follow_latency_ms == approx(5.0)
    assert res.speed == 0.0  # 0 follow tokens in 5 ms


def test_queue_delay_of_an_open_loop_request() -> None:
    res = result_of(stream_record(intended_start=99.9))
    assert res.queue_delay_ms == approx(100.0)
    assert result_of(stream_record()).queue_delay_ms is None


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_failures_carry_no_latency_or_token_figures(stream: bool) -> None:
    r = stream_record() if stream else plain_record()
    r.fail(FailureKind.TRUNCATED, "stream ended with no [DONE] and no finish_reason")
    res = result_of(r, words)
    assert not res.ok
    assert res.failure == FailureKind.TRUNCATED
    assert res.message == "stream ended with no [DONE] and no finish_reason"
    assert res.ttft_ms is None and res.ttfc_ms is None
    assert res.follow_latency_ms is None and res.tpot_ms is None
    assert res.itl_ms == []
    assert res.follow_tokens is None and res.output_tokens is None
    assert res.tokenizer_output_tokens is None
    assert res.speed is None


def test_the_first_failure_cause_is_kept() -> None:
    r = stream_record()
    r.fail("http_500", "first").fail("connection_dropped", "second")
    assert (r.failure, r.message) == ("http_500", "first")
    assert not r.ok


# -- non-streaming -------------------------------------------------------------------------


def test_non_streaming_latency_and_total_tokens_from_usage() -> None:
    res = result_of(plain_record())
    assert res.e2e_ms == approx(500.0)
    assert res.total_tokens == 50  # usage.total_tokens, prompt included, as the seed
    assert res.output_tokens == 30 and res.output_source == TokenSource.USAGE
    assert res.prompt_tokens == 20
    assert res.speed == approx(100.0)  # the seed's speed: 50 total tokens / 0.5 s
    assert res.ttft_ms is None and res.itl_ms == [] and res.tpot_ms is None


def test_non_streaming_tokenizer_count_is_kept_beside_usage() -> None:
    res = result_of(plain_record(), words)
    assert res.tokenizer_output_tokens == 5
    assert res.output_tokens == 30 and res.output_source == TokenSource.USAGE


def test_non_streaming_without_usage_counts_with_the_tokenizer() -> None:
    res = result_of(plain_record(usage=None), words)
    assert res.output_tokens == 5 and res.output_source == TokenSource.TOKENIZER
    assert res.total_tokens is None
    assert res.speed is None  # the seed's speed needs usage.total_tokens


def test_non_streaming_without_usage_or_tokenizer_has_no_token_count() -> None:
    res = result_of(plain_record(usage=None))
    assert res.output_tokens is None and res.output_source == TokenSource.NONE


# -- the seed's speed property -------------------------------------------------------------


def _result(**kw: Any) -> RequestResult:
    base: dict[str, Any] = dict(endpoint="chat", ok=True, start_wall=0.0, e2e_ms=None)
    return RequestResult(**{**base, **kw})


def test_speed_streaming_is_follow_tokens_per_follow_second() -> None:
    # the seed's own printed line: 49 follow tokens in 2477.2791862487793 ms
    r = _result(stream=True, follow_tokens=49, follow_latency_ms=2477.2791862487793)
    assert r.speed == 19.779764942117108


def test_speed_non_streaming_is_total_tokens_per_second() -> None:
    # the seed's own printed line: 74 total tokens in 2575.7412910461426 ms
    r = _result(stream=False, total_tokens=74, e2e_ms=2575.7412910461426)
    assert r.speed == 28.72959340180657


def test_speed_is_none_without_its_inputs() -> None:
    assert _result(stream=True, follow_tokens=None, follow_latency_ms=100.0).speed is None
    assert _result(stream=True, follow_tokens=5, follow_latency_ms=0.0).speed is None
    assert _result(stream=False, total_tokens=None, e2e_ms=100.0).speed is None
    assert _result(stream=False, total_tokens=5, e2e_ms=None).speed is None


def test_to_dict_has_every_field() -> None:
    d = result_of(stream_record()).to_dict()
    keys = {"ttft_ms", "ttfc_ms", "e2e_ms", "follow_latency_ms", "follow_tokens", "tpot_ms",
            "itl_ms", "output_tokens", "follow_source", "ok", "failure"}  # fmt: skip
    assert set(d) >= keys
    assert d["follow_source"] == "events"


def test_cached_tokens_from_usage() -> None:
    from llm_users.measure.per_request import cached_tokens

    assert cached_tokens({"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 4}}) == 4
    assert cached_tokens({"input_tokens_details": {"cached_tokens": 0}}) == 0  # Responses API
    assert cached_tokens({"prompt_tokens": 9}) is None  # the server does not say: not 0
    assert cached_tokens({"prompt_tokens_details": None}) is None
    assert cached_tokens(None) is None


def test_a_first_token_read_with_later_ones_is_flagged_with_its_bound() -> None:
    from llm_users.measure.per_request import result_of
    from llm_users.record import RequestRecord

    rec = RequestRecord(endpoint="chat", stream=True, start=100.0, start_wall=0.0)
    rec.token_times = [100.110, 100.110, 100.110, 100.130]  # three events in one read
    rec.texts = ["a", "b", "c", "d"]
    rec.before_first = 100.104  # the read before it: the first token came in after 104 ms
    rec.end = 100.140
    rec.finish_reason = "stop"
    res = result_of(rec)
    assert res.merged_first == 2
    assert res.first_token_bound_ms == pytest.approx(6.0)
    assert res.ttft_ms == pytest.approx(110.0)  # the stamp itself is unchanged


def test_a_first_token_alone_in_its_read_has_no_bound() -> None:
    from llm_users.measure.per_request import result_of
    from llm_users.record import RequestRecord

    rec = RequestRecord(endpoint="chat", stream=True, start=100.0, start_wall=0.0)
    rec.token_times = [100.110, 100.120, 100.120]  # later ones merged, not the first
    rec.texts = ["a", "b", "c"]
    rec.before_first = 100.104
    rec.end = 100.130
    res = result_of(rec)
    assert res.merged_first == 0 and res.first_token_bound_ms is None


def test_a_first_event_of_two_tokens_leaves_the_rest_as_follow_tokens():
    """Follow tokens are the tokens after the first EVENT: a 2-token first chunk leaves 5."""
    r = stream_record(texts=["Hello there", " big world", " of", " many"])  # 2 + 2 + 1 + 1
    res = result_of(r, words)
    assert (res.first_event_tokens, res.follow_tokens, res.output_tokens) == (2, 4, 6)
    assert len(res.itl_ms) == 3  # one gap per event after the first, whatever it carried
    used = result_of(stream_record(usage={"completion_tokens": 8}))  # 8 tokens, 4 events
    assert (used.first_event_tokens, used.follow_tokens) == (2, 6)
    assert result_of(stream_record()).first_event_tokens == 1  # counted from events


def test_a_usage_count_past_the_bound_is_clamped_and_flagged():
    from llm_users.measure.per_request import MAX_USAGE_TOKENS

    huge = 2**64 - 1  # what a server can send; the totals of two would not fit 64 bits
    usage = {"completion_tokens": huge, "prompt_tokens": 7,
             "prompt_tokens_details": {"cached_tokens": huge}}  # fmt: skip
    res = result_of(stream_record(usage=usage))
    assert res.usage_clamped
    assert res.usage_completion_tokens == res.output_tokens == MAX_USAGE_TOKENS
    assert res.cached_tokens == MAX_USAGE_TOKENS and res.prompt_tokens == 7
    assert res.total_tokens == MAX_USAGE_TOKENS + 7
    ok = result_of(stream_record(usage={"completion_tokens": MAX_USAGE_TOKENS}))
    assert not ok.usage_clamped and ok.output_tokens == MAX_USAGE_TOKENS
