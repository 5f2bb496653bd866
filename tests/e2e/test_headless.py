"""Real `locust` subprocesses, headless: the seed's lines, the JSON, exit codes."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.helpers import (
    ROOT,
    lag_ms,
    mean,
    run_headless,
    run_locust,
    server_e2e_ms,
    server_ttft_ms,
)

pytestmark = pytest.mark.e2e

STREAM_LINES = [
    r"^-{50}$",
    r"^Average First token latency: [0-9.]+ ms$",
    r"^Average follow latency: [0-9.]+ ms$",
    r"^Average follow tokens: [0-9.]+$",
    r"^Follow throughput: [0-9.]+ tokens/s$",
]
NON_STREAM_LINES = [
    r"^-{50}$",
    r"^Average Latency: [0-9.]+ ms$",
    r"^Average Tokens: [0-9.]+$",
    r"^Throughput: [0-9.]+ tokens/s$",
]


def _seed_block(stdout: str, patterns: list[str]) -> list[str]:
    lines = stdout.splitlines()
    start = lines.index("-" * 50)
    block = lines[start : start + len(patterns)]
    for line, pat in zip(block, patterns, strict=True):
        assert re.match(pat, line), (line, pat)
    return block


def _original_mode(config: str, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One of the original benchmark script's two modes, from its config file: 4 users, 50
    tokens; 5 requests each here (10 in the file) to keep the test short."""
    conf = str(ROOT / "config" / config)
    return run_locust("--config", conf, "--host", host, "--requests-per-user", "5", *args)


def test_streaming_run_matches_the_server(simulator, tokenizer_dir, tmp_path):
    sim = simulator(ttft_ms=120, itl_ms=15)
    out = tmp_path / "summary.json"
    proc = _original_mode(
        "seed-streaming.conf",
        sim.url,
        "--tokenizer",
        str(tokenizer_dir),
        "--summary-json",
        str(out),
        "--print-requests",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    block = _seed_block(proc.stdout, STREAM_LINES)
    records = sim.records()
    assert len(records) == 20 and all(r["completed"] for r in records)
    s = json.loads(out.read_text())
    assert s["mode"] == "streaming" and s["requests"] == 20 and s["failures"] == 0
    assert s["concurrency"] == 4
    # within 2 ms (+ the run's loop lag) of the server's own time from request to first token
    slack = 2.0 + lag_ms(s)
    assert abs(s["average_first_token_latency_ms"] - mean(server_ttft_ms(records))) < slack
    assert s["average_follow_tokens"] == 49.0  # 50 tokens, the first one excluded, exact
    assert block[1] == f"Average First token latency: {s['average_first_token_latency_ms']} ms"
    assert block[3] == "Average follow tokens: 49.0"
    per_request = [ln for ln in proc.stdout.splitlines() if ln.startswith("First token latency:")]
    assert len(per_request) == 20 and all("Follow tokens: 49," in ln for ln in per_request)
    for key in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
        assert set(s[key]) >= {"mean", "p50", "p90", "p95", "p99", "max"}
    assert s["output_tokens_per_s"] > 0 and s["requests_per_s"] > 0


def test_non_streaming_run_matches_the_server(simulator, tmp_path):
    sim = simulator(ttft_ms=120, itl_ms=15)
    out = tmp_path / "summary.json"
    proc = _original_mode("seed-non-streaming.conf", sim.url, "--summary-json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    _seed_block(proc.stdout, NON_STREAM_LINES)
    records = sim.records()
    s = json.loads(out.read_text())
    assert s["mode"] == "non-streaming" and s["requests"] == 20 == len(records)
    assert abs(s["average_latency_ms"] - mean(server_e2e_ms(records))) < 2.0 + lag_ms(s)
    assert s["average_tokens"] == mean(
        [r["prompt_tokens"] + r["completion_tokens"] for r in records]
    )
    assert set(s["latency_ms"]) >= {"mean", "p50", "p90", "p95", "p99", "max"}


def test_run_time_ends_the_test_and_summary_prints(simulator, tmp_path):
    sim = simulator(ttft_ms=20, itl_ms=5, output_tokens=10)
    out = tmp_path / "s.json"
    proc = run_headless(
        sim.url,
        2,
        "--stream",
        "-t",
        "3s",
        "--stop-timeout",
        "5",
        "--summary-json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(out.read_text())
    assert s["requests"] == sim.stats()["completed"] > 0
    _seed_block(proc.stdout, STREAM_LINES)
