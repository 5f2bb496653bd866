"""Shared-prefix workloads and trace replay against the simulator's own prefix cache and records."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from tests.helpers import run_in_process, sim_lag_ms

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "traces" / "small.jsonl"


def test_prefix_cache_hit_rate_is_the_simulators_own(simulator, tokenizer_dir):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=3, prefix_cache=True,
                    cache_block_tokens=16, prefill_ms_per_1k_tokens=400,
                    cached_prefill_ms_per_1k_tokens=0)  # fmt: skip
    s = run_in_process(
        sim.url, "--stream", "--endpoint", "completions", "--tokenizer", str(tokenizer_dir),
        "--prefix-tokens", "64", "--prefix-count", "2", "--input-tokens", "24",
        "--seed", "4", "--requests-per-user", "8", users=2,
    ).last_summary  # fmt: skip
    stats, records = sim.stats(), sim.records()
    assert s["requests"] == 16 and s["failures"] == 0
    assert [r["prompt_tokens"] for r in records] == [88] * 16
    pc = s["prefix_cache"]
    assert stats["prefix_cache_queries"] == pc["prompt_tokens"] == 16 * 88
    assert (
        stats["prefix_cache_hits"]
        == pc["cached_tokens"]
        == sum(r["cached_tokens"] for r in records)
    )
    assert (
        pc["hit_rate_percent"] == 100.0 * stats["prefix_cache_hits"] / stats["prefix_cache_queries"]
    )
    assert s["prefix_cache_hit_rate"] == pc["hit_rate_percent"]
    # 64 shared tokens are 4 whole blocks: every request after its prefix's first hits them
    hits = sorted(r["cached_tokens"] for r in records)
    assert hits[:2] == [0, 0] and set(hits[2:]) == {64}
    assert pc["mostly_cached_requests"] == 14
    assert s["ttft_cached_ms"]["count"] == 14 and s["ttft_uncached_ms"]["count"] == 2
    # the uncached prefill costs 400 ms per 1k tokens: 35 ms for 88 tokens, 10 ms for 24
    assert s["ttft_uncached_ms"]["mean"] > s["ttft_cached_ms"]["mean"] + 15


def test_prefix_cache_not_reported_is_never_zero(simulator, tokenizer_dir):
    sim = simulator(ttft_ms=1, itl_ms=1, output_tokens=2)  # no prefix cache: no field
    s = run_in_process(
        sim.url, "--stream", "--endpoint", "chat", "--system-prompt", "", "--prefix-in",
        "system", "--tokenizer", str(tokenizer_dir), "--prefix-tokens", "32",
        "--input-tokens", "8", "--requests-per-user", "3", users=1,
    ).last_summary  # fmt: skip
    records = sim.records()
    assert s["requests"] == 3
    assert all(r["messages"] == ["system", "user"] and r["prompt_tokens"] == 40 for r in records)
    assert s["prefix_cache"]["hit_rate_percent"] is None
    assert s["prefix_cache_hit_rate"] == "not reported by the server"
    assert "ttft_cached_ms" not in s


def test_trace_replay_keeps_the_scaled_times_and_shares_hash_id_blocks(simulator, tokenizer_dir):
    rows = [json.loads(line) for line in TRACE.read_text().splitlines() if line.strip()]
    sim = simulator(ttft_ms=1, itl_ms=1, prefix_cache=True, cache_block_tokens=16)
    plugin = run_in_process(
        sim.url, "--stream", "--endpoint", "completions", "--tokenizer", str(tokenizer_dir),
        "--trace", str(TRACE), "--trace-speed", "2", "--trace-block-tokens", "16",
        users=6, timeout=60,
    )  # fmt: skip
    s, records = plugin.last_summary, sim.records()
    assert s["requests"] == len(rows) == len(records) and s["failures"] == 0
    records.sort(key=lambda r: r["received_at"])
    assert [r["prompt_tokens"] for r in records] == [r["input_length"] for r in rows]
    assert [r["max_tokens"] for r in records] == [r["output_length"] for r in rows]
    # each request starts at its scaled time (the first request's arrival is time 0)
    t0, ts0 = records[0]["received_at"], rows[0]["timestamp"]
    errors = [
        abs((rec["received_at"] - t0) * 1000 - (row["timestamp"] - ts0) / 2)
        for rec, row in zip(records, rows, strict=True)
    ]
    # 5 ms, plus how late this run's own loop woke (p99): a busy machine delays every start;
    # plus the simulator's (it stamps an arrival when its loop, busy streaming, reads it)
    lag = ((s.get("client_loop_lag_ms") or {}).get("p99") or 0.0) + sim_lag_ms(sim, "p99")
    assert statistics.median(errors) < 5 + lag, (lag, errors)
    # the simulator's cache hits are exactly the whole 16-token blocks shared by hash ids
    # with an earlier row (blocks are cached once their request has been received)
    for i, (rec, row) in enumerate(zip(records, rows, strict=True)):
        best = 0
        for prev in rows[:i]:
            n = 0
            for j, (a, b) in enumerate(zip(row["hash_ids"], prev["hash_ids"], strict=False)):
                full = (j + 1) * 16 <= min(row["input_length"], prev["input_length"])
                if a != b or not full:
                    break
                n += 16
            best = max(best, n)
        assert rec["cached_tokens"] == best, (i, row)
    assert s["prefix_cache"]["cached_tokens"] == sim.stats()["prefix_cache_hits"] > 0
