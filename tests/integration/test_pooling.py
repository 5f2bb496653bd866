"""--endpoint embeddings and --endpoint rerank against the simulator: whole answers, never
streamed; the counts (requests, inputs, documents, tokens) are what the simulator counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_in_process


def _run(sim, tmp_path: Path, *args: str) -> tuple[dict, list[dict]]:
    out = tmp_path / "records.jsonl"
    plugin = run_in_process(sim.url, "--records", str(out), "--requests-per-user", "5", *args,
                            users=3)  # fmt: skip
    assert plugin.last_summary is not None
    return plugin.last_summary, [json.loads(x) for x in out.read_text().splitlines()]


def test_embeddings_count_what_the_simulator_embedded(simulator, tmp_path):
    sim = simulator(ttft_ms=3, prefill_ms_per_1k_tokens=20)
    s, recs = _run(sim, tmp_path, "--endpoint", "embeddings", "--embedding-batch", "4",
                   "--prompt-type", "random")  # fmt: skip
    served = sim.records()
    assert len(served) == 15 and all(r["path"] == "/v1/embeddings" for r in served)
    assert all(r["status"] == 200 and r["items"] == 4 for r in served)
    assert s["mode"] == "non-streaming" and s["endpoint"] == "embeddings"
    assert s["requests"] == 15 and s["failures"] == 0
    assert s["latency_ms"]["count"] == 15 and "ttft_ms" not in s
    assert sum(r["items"] for r in recs) == sim.stats()["pooled_items"] == 60
    tokens = sum(r["prompt_tokens"] for r in served)
    assert sum(r["prompt_tokens"] for r in recs) == tokens > 0
    assert s["inputs_per_s"] == pytest.approx(60 / s["duration_s"])
    assert s["input_tokens_per_s"] == pytest.approx(tokens / s["duration_s"])
    assert all(not r["stream"] and r["output_tokens"] is None for r in recs)


def test_rerank_counts_what_the_simulator_scored(simulator, tmp_path):
    sim = simulator(ttft_ms=3)
    s, recs = _run(sim, tmp_path, "--endpoint", "rerank", "--rerank-documents", "6")
    served = sim.records()
    assert len(served) == 15 and all(r["path"] == "/v1/rerank" for r in served)
    assert all(r["status"] == 200 and r["items"] == 6 for r in served)
    assert s["requests"] == 15 and s["failures"] == 0 and s["mode"] == "non-streaming"
    assert sum(r["items"] for r in recs) == sim.stats()["pooled_items"] == 90
    assert sum(r["prompt_tokens"] for r in recs) == sum(r["prompt_tokens"] for r in served)
    assert s["documents_per_s"] == pytest.approx(90 / s["duration_s"])
    assert "inputs_per_s" not in s


def test_a_chat_run_has_no_pooling_figures(simulator, tmp_path):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=3)
    s, _ = _run(sim, tmp_path)
    assert not {"inputs_per_s", "input_tokens_per_s", "documents_per_s"} & set(s)
