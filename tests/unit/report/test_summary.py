"""The summary: the seed's lines word for word, its formulas, and the JSON keys."""

from __future__ import annotations

import functools
import json
import operator
from typing import Any

import pytest

from llm_users.measure.aggregate import Aggregate
from llm_users.measure.per_request import RequestResult, TokenSource
from llm_users.report.summary import RunInfo, request_line, seed_lines, summary_dict, table_lines

T0 = 1_700_000_000.0
DASHES = "--------------------------------------------------"
DIST_KEYS = {"mean", "p50", "p90", "p95", "p99", "max"}


def stream(ttft: float, follow: float, tokens: int, start: float = T0, **kw: Any
           ) -> RequestResult:  # fmt: skip
    base: dict[str, Any] = dict(
        endpoint="chat", stream=True, ok=True, start_wall=start, e2e_ms=ttft + follow,
        ttft_ms=ttft, ttfc_ms=ttft, follow_latency_ms=follow, follow_tokens=tokens,
        follow_source=TokenSource.TOKENIZER, output_tokens=tokens + 1,
        output_source=TokenSource.TOKENIZER, tpot_ms=follow / tokens,
        itl_ms=[follow / tokens] * tokens, token_events=tokens + 1,
    )  # fmt: skip
    base.update(kw)
    return RequestResult(**base)


def plain(latency: float, total: int, start: float = T0, **kw: Any) -> RequestResult:
    base: dict[str, Any] = dict(
        endpoint="chat", stream=False, ok=True, start_wall=start, e2e_ms=latency,
        total_tokens=total, prompt_tokens=24, output_tokens=total - 24,
        output_source=TokenSource.USAGE,
    )  # fmt: skip
    base.update(kw)
    return RequestResult(**base)


def failed(kind: str = "http_503", start: float = T0) -> RequestResult:
    return RequestResult(endpoint="chat", stream=True, ok=False, start_wall=start, e2e_ms=5.0,
                         status=503, failure=kind, message="HTTP 503: overloaded")  # fmt: skip


def agg_of(*results: RequestResult) -> Aggregate:
    a = Aggregate()
    for r in results:
        a.add(r)
    return a


STREAMING = RunInfo(mode="streaming", concurrency=4, model="m", host="http://h")
NON_STREAMING = RunInfo(mode="non-streaming", concurrency=4, model="m", host="http://h")


# -- per-request lines: the seed's own printed lines, reproduced from its own numbers ------


def test_non_streaming_request_line_is_the_seeds() -> None:
    r = plain(2575.7412910461426, 74)
    assert request_line(r) == (
        "Latency: 2575.7412910461426 ms, Total tokens: 74, Speed: 28.72959340180657 tokens/s"
    )


def test_streaming_request_line_is_the_seeds() -> None:
    r = stream(93.83893013000488, 2477.2791862487793, 49)
    assert request_line(r) == (
        "First token latency: 93.83893013000488 ms, Follow tokens: 49, "
        "Follow latency: 2477.2791862487793 ms, Follow Speed: 19.779764942117108 tokens/s"
    )


def test_failed_request_line() -> None:
    assert request_line(failed()) == "Request failed (http_503): HTTP 503: overloaded"


# -- the seed's summary lines --------------------------------------------------------------


def test_streaming_seed_lines_with_hand_numbers() -> None:
    # speeds: 49 / 2.0 s = 24.5 and 49 / 1.0 s = 49.0; mean 36.75; x 4 users = 147.0
    a = agg_of(stream(100.0, 2000.0, 49), stream(200.0, 1000.0, 49), failed())
    assert seed_lines(a, STREAMING) == [
        DASHES,
        "Average First token latency: 150.0 ms",
        "Average follow latency: 1500.0 ms",
        "Average follow tokens: 49.0",
        "Follow throughput: 147.0 tokens/s",
    ]


def test_non_streaming_seed_lines_with_hand_numbers() -> None:
    # speeds: 74 / 2 s = 37.0 and 74 / 4 s = 18.5; mean 27.75; x 4 users = 111.0
    a = agg_of(plain(2000.0, 74), plain(4000.0, 74))
    assert seed_lines(a, NON_STREAMING) == [
        DASHES,
        "Average Latency: 3000.0 ms",
        "Average Tokens: 74.0",
        "Throughput: 111.0 tokens/s",
    ]


def test_seed_lines_print_floats_as_python_does() -> None:
    # the seed prints the raw float (str), not a rounded one
    lat = [2575.7412910461426, 2575.5906105041504, 2575.0246047973633, 2574.532985687256]
    a = agg_of(*(plain(x, 74) for x in lat))
    speeds = [74 / (x / 1000.0) for x in lat]
    lines = seed_lines(a, NON_STREAMING)
    assert len(DASHES) == 50 and lines[0] == DASHES
    assert lines[1] == f"Average Latency: {_seed_sum(lat) / 4} ms"
    assert lines[2] == "Average Tokens: 74.0"
    assert lines[3] == f"Throughput: {_seed_sum(speeds) / 4 * 4} tokens/s"


def _seed_sum(values: list[float]) -> float:
    """The seed's ``sum()`` as Python 3.10/3.11 computes it: plain left-to-right addition
    (3.12+ compensates float sums, which can change the last printed digit)."""
    return functools.reduce(operator.add, values, 0)


def test_seed_lines_of_an_empty_run_say_n_a() -> None:
    assert seed_lines(Aggregate(), STREAMING)[1] == "Average First token latency: n/a ms"
    assert seed_lines(Aggregate(), NON_STREAMING)[3] == "Throughput: n/a tokens/s"


# -- the JSON summary ----------------------------------------------------------------------

COMMON = {"mode", "concurrency", "requests", "failures", "duration_s", "output_tokens_per_s",
          "requests_per_s"}  # fmt: skip
STREAM_KEYS = {"average_first_token_latency_ms", "average_follow_latency_ms",
               "average_follow_tokens", "follow_throughput_tokens_per_s"}  # fmt: skip
PLAIN_KEYS = {"average_latency_ms", "average_tokens", "throughput_tokens_per_s"}


def test_streaming_json_keys_and_values() -> None:
    # requests start at T0 and T0 + 1 s; the second ends at T0 + 1 + 1.2 s: 2.2 s measured
    a = agg_of(stream(100.0, 2000.0, 49), stream(200.0, 1000.0, 49, start=T0 + 1.0), failed())
    d = summary_dict(a, STREAMING)
    assert set(d) >= COMMON | STREAM_KEYS
    assert not PLAIN_KEYS & set(d)
    assert d["mode"] == "streaming" and d["concurrency"] == 4
    assert d["requests"] == 2 and d["failures"] == 1
    assert d["failures_by_kind"] == {"http_503": 1}
    assert d["duration_s"] == pytest.approx(2.2)
    assert d["output_tokens"] == 100
    assert d["output_tokens_per_s"] == pytest.approx(100 / 2.2)
    assert d["requests_per_s"] == pytest.approx(2 / 2.2)
    assert d["average_first_token_latency_ms"] == 150.0
    assert d["average_follow_latency_ms"] == 1500.0
    assert d["average_follow_tokens"] == 49.0
    assert d["follow_throughput_tokens_per_s"] == 147.0
    for name in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
        assert set(d[name]) >= DIST_KEYS, name
    assert d["ttft_ms"]["mean"] == 150.0 and d["ttft_ms"]["max"] == 200.0
    assert d["ttft_ms"]["p50"] == pytest.approx(100.0, rel=5e-4)
    assert d["e2e_ms"]["max"] == 2100.0
    assert d["itl_ms"]["count"] == 98  # 49 gaps per request
    assert d["follow_tokens_source"] == {TokenSource.TOKENIZER: 2}
    json.dumps(d, allow_nan=False)


def test_non_streaming_json_keys_and_values() -> None:
    a = agg_of(plain(2000.0, 74), plain(4000.0, 74, start=T0 + 2.0))  # period T0 .. T0 + 6 s
    d = summary_dict(a, NON_STREAMING)
    assert set(d) >= COMMON | PLAIN_KEYS
    assert not STREAM_KEYS & set(d)
    assert d["mode"] == "non-streaming"
    assert d["duration_s"] == 6.0
    assert d["average_latency_ms"] == 3000.0
    assert d["average_tokens"] == 74.0
    assert d["throughput_tokens_per_s"] == 111.0
    assert d["output_tokens"] == 100  # completion tokens only: 2 x (74 - 24)
    assert d["output_tokens_per_s"] == pytest.approx(100 / 6)
    assert d["requests_per_s"] == pytest.approx(2 / 6)
    assert set(d["latency_ms"]) >= DIST_KEYS
    assert d["latency_ms"]["mean"] == 3000.0 and d["latency_ms"]["max"] == 4000.0
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize("info", [STREAMING, NON_STREAMING], ids=lambda i: i.mode)
def test_empty_run_is_valid_json_with_none_figures(info: RunInfo) -> None:
    d = summary_dict(Aggregate(), info)
    assert d["requests"] == d["failures"] == 0
    assert d["duration_s"] == 0.0
    assert d["output_tokens_per_s"] is None and d["requests_per_s"] is None
    dist = d["ttft_ms"] if info.mode == "streaming" else d["latency_ms"]
    assert all(dist[k] is None for k in DIST_KEYS)
    json.loads(json.dumps(d, allow_nan=False))


def test_token_count_check_and_short_outputs_in_json() -> None:
    a = agg_of(
        stream(100.0, 1000.0, 49, tokenizer_output_tokens=50, usage_completion_tokens=53,
               max_tokens=128),
        stream(100.0, 1000.0, 49, tokenizer_output_tokens=50, usage_completion_tokens=50,
               max_tokens=50),
    )  # fmt: skip
    d = summary_dict(a, STREAMING)
    assert d["token_count_check"] == {"compared": 2, "mean_abs_diff": 1.5, "max_abs_diff": 3}
    assert d["short_outputs"] == {"requests": 1, "of": 2}  # 50 < 128; 50 is not < 50


def test_run_facts_from_extra_are_included() -> None:
    info = RunInfo(mode="streaming", concurrency=1, extra={"workers": 3})
    assert summary_dict(Aggregate(), info)["workers"] == 3


# -- the table -----------------------------------------------------------------------------


def test_streaming_table_lines() -> None:
    a = agg_of(stream(100.0, 2000.0, 49), stream(200.0, 1000.0, 49), failed())
    text = "\n".join(table_lines(a, STREAMING))
    assert "LLM summary (streaming, chat, model m, 4 users)" in text
    assert "requests ok 2   failed 1" in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  TTFT")}
    assert rows["TTFT"].split()[1:3] == ["2", "150.00"]  # count, mean
    assert "http_503" in text and "HTTP 503: overloaded" in text
    assert "follow tokens counted by: tokenizer (2)" in text


def test_non_streaming_table_lines() -> None:
    text = "\n".join(table_lines(agg_of(plain(2000.0, 74)), NON_STREAMING))
    latency_rows = [line for line in text.splitlines() if line.startswith("  Latency")]
    assert len(latency_rows) == 1
    assert latency_rows[0].split()[1:3] == ["1", "2,000.00"]
    assert "TTFT" not in text


def _cache_result(prompt: int, cached: int | None, ttft: float) -> RequestResult:
    return RequestResult(endpoint="completions", stream=True, ok=True, start_wall=1.0,
                         e2e_ms=ttft + 10, ttft_ms=ttft, prompt_tokens=prompt,
                         cached_tokens=cached)  # fmt: skip


def test_prefix_cache_hit_rate_and_ttft_split() -> None:
    agg = Aggregate()
    for prompt, cached, ttft in ((100, 0, 50.0), (100, 50, 20.0), (100, 96, 10.0), (50, 24, 40.0)):
        agg.add(_cache_result(prompt, cached, ttft))
    info = RunInfo(mode="streaming", concurrency=1)
    d = summary_dict(agg, info)
    pc = d["prefix_cache"]
    assert pc["hit_rate_percent"] == 100.0 * 170 / 350 == d["prefix_cache_hit_rate"]
    assert (pc["cached_tokens"], pc["prompt_tokens"], pc["mostly_cached_requests"]) == (170, 350, 2)
    assert d["ttft_cached_ms"]["count"] == 2 and d["ttft_uncached_ms"]["count"] == 2
    assert any("prefix cache hit rate: 48.6 %" in line for line in table_lines(agg, info))


def test_prefix_cache_not_reported_by_the_server() -> None:
    agg = Aggregate()
    agg.add(_cache_result(100, None, 30.0))
    assert "prefix_cache" not in summary_dict(agg, RunInfo(mode="streaming", concurrency=1))
    info = RunInfo(mode="streaming", concurrency=1, prefix_workload=True)
    d = summary_dict(agg, info)
    assert d["prefix_cache_hit_rate"] == "not reported by the server"
    assert d["prefix_cache"]["hit_rate_percent"] is None and "ttft_cached_ms" not in d
    assert any("not reported by the server" in line for line in table_lines(agg, info))


def _stream(send_ms: float, bound_ms: float | None = None) -> Any:
    from llm_users.measure.per_request import RequestResult

    return RequestResult(
        endpoint="chat",
        stream=True,
        ok=True,
        start_wall=1000.0,
        e2e_ms=100.0,
        ttft_ms=20.0,
        follow_latency_ms=80.0,
        follow_tokens=8,
        output_tokens=9,
        token_events=9,
        send_ms=send_ms,
        merged_first=2 if bound_ms is not None else 0,
        first_token_bound_ms=bound_ms,
    )


@pytest.mark.parametrize(
    ("source", "merged", "ttft", "itl"),
    [
        # kernel stamps: a read is off by the clock offset's uncertainty (50 us) only
        ("kernel", 0, 0.02 + 0.05, 0.1),
        # user stamps: a read may be seen as late as the loop lag (p99 2 ms)
        ("user", 0, 0.02 + 2.0, 4.0),
        # kernel stamps, a third of the first tokens read with later ones, 6 ms before
        ("kernel", 34, 0.02 + 0.05 + 6.0, 0.1),
    ],
)
def test_the_error_bound_grows_with_each_cause(source, merged, ttft, itl) -> None:
    from llm_users.measure.aggregate import Aggregate
    from llm_users.report.summary import error_bound

    agg = Aggregate()
    for i in range(100):
        agg.add(_stream(0.02, 6.0 if i < merged else None))
    extra = {
        "timestamps": {
            "source": source,
            "offset_uncertainty_us": 50.0 if source == "kernel" else None,
        },
        "client_loop_lag_ms": {"p50": 0.5, "p99": 2.0, "max": 3.0},
    }
    b = error_bound(agg, extra, "streaming")
    assert b["ttft_ms"] == pytest.approx(ttft, abs=0.01)
    assert b["itl_ms"] == pytest.approx(itl, abs=0.001)
    assert b["e2e_ms"] == pytest.approx(ttft - (6.0 if merged else 0.0), abs=0.01)
