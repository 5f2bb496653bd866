"""Cancellation in real locust processes: headless, and a master with two workers; the counts
are the simulator's hang-ups, and the abort check reads its running gauge."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_distributed import Cluster
from tests.helpers import run_headless

pytestmark = pytest.mark.e2e

CANCEL = ["--cancel-rate", "0.5", "--cancel-after", "30", "--seed", "5"]


def _hung_up(sim) -> int:
    return sum(r["cancelled_at"] is not None for r in sim.records())


def test_headless_run_counts_cancellations_as_the_simulator_saw_them(simulator, tmp_path):
    sim = simulator(ttft_ms=20, itl_ms=3, output_tokens=40)
    out = tmp_path / "s.json"
    proc = run_headless(sim.url, 2, *CANCEL, "--requests-per-user", "6", "--summary-json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(out.read_text())
    assert s["cancelled"] >= _hung_up(sim) > 0 and s["failures"] == 0
    assert s["requests"] + s["cancelled"] == 12 == len(sim.records())
    assert s["abort_check"]["leaked"] == 0
    assert f"cancelled: {s['cancelled']} requests" in proc.stdout
    assert "abort check: freed" in proc.stdout


def test_distributed_run_counts_cancellations_and_names_a_leak(simulator, tmp_path):
    sim = simulator(ttft_ms=20, itl_ms=3, output_tokens=40, leak_cancelled=True)
    args = ["--headless", "-u", "4", "-r", "4", *CANCEL, "--requests-per-user", "4"]
    c = Cluster(tmp_path, sim.url, args)
    code, out = c.wait()
    assert code == 0, out[-3000:]
    s = json.loads(c.summary.read_text())
    assert s["requests"] + s["cancelled"] == 16 == len(sim.records())
    assert s["cancelled"] >= _hung_up(sim) > 0 and s["failures"] == 0
    leaked = sim.stats()["leaked"]
    assert leaked > 0 and s["abort_check"]["leaked"] == leaked
    assert s["abort_check"]["verdict"].startswith("LEAK")
