"""The Responses API (`--endpoint responses`) against the simulator's /v1/responses."""

from __future__ import annotations

from tests.helpers import mean, run_in_process, server_ttft_ms, sim_lag_ms


def _tolerance_ms(summary: dict, sim: object) -> float:
    """2 ms, plus how late the client's loop woke in this very run (its timing uncertainty),
    plus the simulator's own (it stamps a request's arrival when its loop reads it)."""
    return 2.0 + ((summary.get("client_loop_lag_ms") or {}).get("max") or 0.0) + sim_lag_ms(sim)


def test_streaming_responses_ttft_and_tokens_match_the_server(simulator, tokenizer_dir):
    sim = simulator(ttft_ms=60, itl_ms=8, output_tokens=20)
    plugin = run_in_process(
        sim.url,
        "--endpoint",
        "responses",
        "--stream",
        "--tokenizer",
        str(tokenizer_dir),
        "--requests-per-user",
        "3",
        users=3,
    )
    s = plugin.last_summary
    records = sim.records()
    assert all(r["path"] == "/v1/responses" for r in records), {r["path"] for r in records}
    assert s["endpoint"] == "responses"
    assert s["requests"] == 9 == len(records) and s["failures"] == 0
    assert s["average_follow_tokens"] == 19.0  # 20 tokens, one per delta event
    assert s["itl_ms"]["count"] == 9 * 19
    # usage from response.completed (input/output tokens) agrees with the tokenizer's count
    assert s["token_count_check"]["compared"] == 9
    assert s["token_count_check"]["max_abs_diff"] == 0
    got, want = s["average_first_token_latency_ms"], mean(server_ttft_ms(records))
    assert abs(got - want) < _tolerance_ms(s, sim), (got, want, s.get("client_loop_lag_ms"))


def test_non_streaming_responses(simulator):
    sim = simulator(ttft_ms=20, itl_ms=2, output_tokens=12)
    plugin = run_in_process(
        sim.url, "--endpoint", "responses", "--no-stream", "--requests-per-user", "2", users=2
    )
    s = plugin.last_summary
    records = sim.records()
    assert s["requests"] == 4 == len(records) and s["failures"] == 0
    want = mean([r["prompt_tokens"] + r["completion_tokens"] for r in records])
    assert s["average_tokens"] == want
