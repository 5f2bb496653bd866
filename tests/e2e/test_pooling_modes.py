"""Embeddings and rerank in real locust processes (headless, a master with two workers): the
counts are what the simulator counted."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_distributed import Cluster
from tests.helpers import run_headless

pytestmark = pytest.mark.e2e


def test_headless_embeddings(simulator, tmp_path):
    sim = simulator(ttft_ms=3)
    out = tmp_path / "s.json"
    proc = run_headless(sim.url, 2, "--endpoint", "embeddings", "--embedding-batch", "3",
                        "--requests-per-user", "4", "--summary-json", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(out.read_text())
    assert s["requests"] == 8 == len(sim.records()) and s["failures"] == 0
    assert sim.stats()["pooled_items"] == 24
    assert s["inputs_per_s"] == pytest.approx(24 / s["duration_s"])
    assert "inputs/s" in proc.stdout and "Average Latency:" in proc.stdout


def test_distributed_rerank(simulator, tmp_path):
    sim = simulator(ttft_ms=3)
    args = ["--headless", "-u", "4", "-r", "4", "--endpoint", "rerank", "--rerank-documents",
            "5", "--requests-per-user", "3"]  # fmt: skip
    c = Cluster(tmp_path, sim.url, args)
    code, out = c.wait()
    assert code == 0, out[-3000:]
    s = json.loads(c.summary.read_text())
    assert s["requests"] == 12 == len(sim.records()) and s["failures"] == 0
    assert all(r["path"] == "/v1/rerank" and r["items"] == 5 for r in sim.records())
    assert s["documents_per_s"] == pytest.approx(60 / s["duration_s"])
