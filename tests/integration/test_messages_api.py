"""Anthropic's Messages API (`--endpoint messages`) against the simulator's /v1/messages."""

from __future__ import annotations

from llm_users.measure.per_request import RequestResult
from llm_users.record import RequestRecord
from tests.helpers import mean, run_in_process, server_ttft_ms, sim_lag_ms

KEY = "sk-ant-test-0123456789"


def _tolerance_ms(summary: dict, sim: object) -> float:
    """2 ms, plus how late the client's loop woke in this very run (its timing uncertainty),
    plus the simulator's own (it stamps a request's arrival when its loop reads it)."""
    return 2.0 + ((summary.get("client_loop_lag_ms") or {}).get("max") or 0.0) + sim_lag_ms(sim)


def test_streaming_messages_with_thinking_match_the_server(simulator, tokenizer_dir):
    # 5 thinking tokens then 15 text tokens: the first token is the first thinking delta.
    sim = simulator(ttft_ms=60, itl_ms=8, output_tokens=20, reasoning_tokens=5, api_key=KEY)
    kept: list[tuple[RequestRecord, RequestResult]] = []
    plugin = run_in_process(
        sim.url,
        "--endpoint",
        "messages",
        "--stream",
        "--api-key",
        KEY,
        "--tokenizer",
        str(tokenizer_dir),
        "--requests-per-user",
        "3",
        users=3,
        collect=kept,
    )
    s = plugin.last_summary
    records = sim.records()
    assert all(r["path"] == "/v1/messages" for r in records), {r["path"] for r in records}
    assert s["endpoint"] == "messages"
    assert s["requests"] == 9 == len(records) and s["failures"] == 0
    assert all(r["completion_tokens"] == 20 and r["finish_reason"] == "stop" for r in records)
    assert s["average_follow_tokens"] == 19.0  # 20 tokens, one per delta event
    assert s["itl_ms"]["count"] == 9 * 19
    # usage: input tokens from message_start, output tokens from message_delta
    for rec, res in kept:
        assert rec.finish_reason == "stop"
        assert res.usage_completion_tokens == 20 and res.output_tokens == 20
        assert rec.first_content_at is not None and rec.first_content_at > rec.token_times[0]
    prompts = sorted(r["prompt_tokens"] for r in records)
    assert sorted(res.prompt_tokens for _, res in kept) == prompts
    assert s["token_count_check"]["compared"] == 9
    assert s["token_count_check"]["max_abs_diff"] == 0
    # TTFT is the first thinking delta, as the server stamped it
    got, want = s["average_first_token_latency_ms"], mean(server_ttft_ms(records))
    assert abs(got - want) < _tolerance_ms(s, sim), (got, want, s.get("client_loop_lag_ms"))


def test_non_streaming_messages(simulator):
    sim = simulator(ttft_ms=20, itl_ms=2, output_tokens=12, reasoning_tokens=3)
    kept: list[tuple[RequestRecord, RequestResult]] = []
    plugin = run_in_process(
        sim.url,
        "--endpoint",
        "messages",
        "--no-stream",
        "--max-tokens",
        "12",
        "--requests-per-user",
        "2",
        users=2,
        collect=kept,
    )
    s = plugin.last_summary
    records = sim.records()
    assert s["requests"] == 4 == len(records) and s["failures"] == 0
    assert all(r["finish_reason"] == "length" for r in records)  # 12 of max_tokens 12
    assert all(rec.finish_reason == "length" for rec, _ in kept)  # max_tokens -> length
    want = mean([r["prompt_tokens"] + r["completion_tokens"] for r in records])
    assert s["average_tokens"] == want
