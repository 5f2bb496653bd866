"""In-process Locust runs against the simulator: figures checked against its own records."""

from __future__ import annotations

import pytest

from tests.helpers import (
    lag_ms,
    mean,
    run_in_process,
    server_e2e_ms,
    server_itl_ms,
    server_ttft_ms,
)

FLOOR_MS = 2.0  # client vs server clock of one request on an idle loop: the network, parsing


def test_streaming_figures_match_the_server(simulator, tokenizer_dir):
    sim = simulator(ttft_ms=60, itl_ms=8, output_tokens=30)
    plugin = run_in_process(
        sim.url,
        "--stream",
        "--tokenizer",
        str(tokenizer_dir),
        "--max-tokens",
        "50",
        "--requests-per-user",
        "3",
        users=4,
    )
    s = plugin.last_summary
    records = sim.records()
    assert s["requests"] == 12 == len(records)
    assert s["failures"] == 0
    assert s["average_follow_tokens"] == 29.0  # 30 tokens, 1 per event: 29 after the first
    assert s["follow_tokens_source"] == {"tokenizer": 12}
    # The client's clock against the server's, each request late by at most the loop lag.
    slack = FLOOR_MS + lag_ms(s)
    assert abs(s["average_first_token_latency_ms"] - mean(server_ttft_ms(records))) < slack
    assert s["ttft_ms"]["count"] == 12 and s["itl_ms"]["count"] == 12 * 29
    # a request's gaps add up to its first-to-last token time: two stamps, each late by the lag
    itl_slack = (FLOOR_MS + 2 * lag_ms(s)) / 29
    assert abs(s["itl_ms"]["mean"] - server_itl_ms(records)) < itl_slack
    assert s["token_count_check"] == {"compared": 12, "mean_abs_diff": 0.0, "max_abs_diff": 0}
    assert s["concurrency"] == 4


def test_non_streaming_latency_and_total_tokens(simulator):
    sim = simulator(ttft_ms=40, itl_ms=5, output_tokens=20)
    plugin = run_in_process(
        sim.url, "--no-stream", "--max-tokens", "50", "--requests-per-user", "2", users=3
    )
    s = plugin.last_summary
    records = sim.records()
    assert s["mode"] == "non-streaming" and s["requests"] == 6
    want_tokens = mean([r["prompt_tokens"] + r["completion_tokens"] for r in records])
    assert s["average_tokens"] == want_tokens
    assert abs(s["average_latency_ms"] - mean(server_e2e_ms(records))) < FLOOR_MS + lag_ms(s)
    assert s["latency_ms"]["count"] == 6


def test_without_tokenizer_usage_then_events(simulator):
    sim = simulator(ttft_ms=10, itl_ms=2, output_tokens=12, tokens_per_chunk=3)
    s = run_in_process(sim.url, "--stream", "--requests-per-user", "2", users=2).last_summary
    # usage: 12 completion tokens in 4 events of 3: follow = 12 - 3
    assert s["follow_tokens_source"] == {"usage": 4} and s["average_follow_tokens"] == 9.0
    assert s["itl_ms"]["count"] == 4 * 3  # one gap per event, not per token
    s = run_in_process(
        sim.url, "--stream", "--stream-usage", "off", "--requests-per-user", "2", users=2
    ).last_summary
    assert s["follow_tokens_source"] == {"events": 4} and s["average_follow_tokens"] == 3.0


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
@pytest.mark.parametrize("stream", [True, False])
def test_both_endpoints_stream_and_not(simulator, endpoint, stream):
    sim = simulator(ttft_ms=5, itl_ms=1, output_tokens=10)
    args = ["--endpoint", endpoint, "--requests-per-user", "2"] + (["--stream"] if stream else [])
    s = run_in_process(sim.url, *args, users=2).last_summary
    assert s["requests"] == 4 and s["failures"] == 0
    assert s["output_tokens"] == 40
    paths = {r["path"] for r in sim.records()}
    assert paths == {"/v1/completions" if endpoint == "completions" else "/v1/chat/completions"}


def test_custom_events_fire_once_per_request(simulator):
    from locust.env import Environment  # noqa: F401  (events live on the environment)

    sim = simulator(ttft_ms=5, itl_ms=1, output_tokens=5)
    seen: dict[str, int] = {"first": 0, "follow": 0, "request": 0}
    from tests import helpers

    original = helpers.setup

    def setup_with_listeners(env):
        plugin = original(env)
        env.events.llm_first_token.add_listener(
            lambda **kw: seen.__setitem__("first", seen["first"] + 1)
        )
        env.events.llm_follow_tokens.add_listener(
            lambda **kw: seen.__setitem__("follow", seen["follow"] + 1)
        )
        env.events.llm_request.add_listener(
            lambda **kw: seen.__setitem__("request", seen["request"] + 1)
        )
        return plugin

    helpers.setup = setup_with_listeners
    try:
        plugin = run_in_process(sim.url, "--stream", "--requests-per-user", "3", users=2)
    finally:
        helpers.setup = original
    assert seen == {"first": 6, "follow": 6, "request": 6}
    stats = plugin.env.stats
    assert stats.get("TTFT", "LLM").num_requests == 6
    assert stats.total.num_requests == 6  # the TTFT/Follow rows do not inflate Aggregated


def test_think_time_spaces_one_users_requests_by_its_seeded_draws(simulator):
    import random

    sim = simulator(ttft_ms=5, itl_ms=1, output_tokens=5)
    plugin = run_in_process(
        sim.url, "--think-time", "0.2-0.3", "--seed", "11", "--requests-per-user", "3", users=1
    )
    starts = sorted(r["received_at"] for r in sim.records())  # the server's clock
    assert len(starts) == 3 and plugin.last_summary["failures"] == 0
    # The one user's stream: its draws are known, so each gap is checked against its own.
    rng = random.Random(plugin.ctx.settings.seed_for("think/user0", 0))
    draws = [rng.uniform(0.2, 0.3) for _ in range(2)]
    assert draws[0] != draws[1]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    for gap, think in zip(gaps, draws, strict=True):
        # The next request leaves after the answer arrived and the draw slept: no sooner.
        assert gap >= think, (gaps, draws)
