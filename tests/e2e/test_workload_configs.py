"""The shared-prefix and trace-replay config files, each run as a real `locust` subprocess."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ROOT, run_locust

pytestmark = pytest.mark.e2e


def test_shared_prefix_config(simulator, tokenizer_dir, tmp_path):
    sim = simulator(ttft_ms=1, itl_ms=1, output_tokens=4, prefix_cache=True, cache_block_tokens=16)
    out = tmp_path / "s.json"
    proc = run_locust(
        "--config", str(ROOT / "config" / "shared-prefix.conf"), "--host", sim.url,
        "--tokenizer", str(tokenizer_dir), "--requests-per-user", "3", "--summary-json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    s, stats = json.loads(out.read_text()), sim.stats()
    assert s["requests"] == 24 and s["failures"] == 0
    assert [r["prompt_tokens"] for r in sim.records()] == [1024 + 128] * 24
    assert s["prefix_cache"]["cached_tokens"] == stats["prefix_cache_hits"]
    assert s["prefix_cache"]["prompt_tokens"] == stats["prefix_cache_queries"] == 24 * 1152
    assert "prefix cache hit rate: " in proc.stdout


def test_trace_replay_config(simulator, tokenizer_dir, tmp_path):
    rows = (ROOT / "tests" / "fixtures" / "traces" / "small.jsonl").read_text().splitlines()
    sim = simulator(ttft_ms=1, itl_ms=1, prefix_cache=True, cache_block_tokens=16)
    out = tmp_path / "t.json"
    proc = run_locust(
        "--config", str(ROOT / "config" / "trace-replay.conf"), "--host", sim.url,
        "--tokenizer", str(tokenizer_dir), "--summary-json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(out.read_text())
    records = sorted(sim.records(), key=lambda r: r["received_at"])
    assert s["requests"] == len(rows) == len(records) and s["failures"] == 0
    lengths = [json.loads(r)["input_length"] for r in rows]
    assert [r["prompt_tokens"] for r in records] == lengths
    assert s["prefix_cache"]["cached_tokens"] == sim.stats()["prefix_cache_hits"] > 0


def test_trace_without_tokenizer_is_one_line_and_exit_2(simulator):
    proc = run_locust("--headless", "--host", "http://127.0.0.1:9", "--trace",
                      str(ROOT / "tests" / "fixtures" / "traces" / "small.jsonl"))  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("llm-users: error: --trace ")
    assert "Traceback" not in proc.stderr


def test_bad_trace_row_names_file_and_line(tokenizer_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 3, "output_length": 1}\n'
                   '{"input_length": 3, "output_length": 1}\n')  # fmt: skip
    proc = run_locust("--headless", "--host", "http://127.0.0.1:9", "--preflight", "off",
                      "--tokenizer", str(tokenizer_dir), "--trace", str(bad))  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"llm-users: error: {bad}:2: no 'timestamp' (ms)"
    assert "Traceback" not in proc.stderr
