"""A headless run stopped by Ctrl-C (SIGINT) or SIGTERM before its end says so, with the
requests it dropped in flight (a real locust subprocess against the simulator)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from llm_users.simulator.process import stop_process
from tests.helpers import ROOT, locust_cmd

USERS = 3


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_says_so_with_the_requests_it_dropped(
    simulator, tmp_path: Path, sig: signal.Signals
) -> None:
    sim = simulator(ttft_ms=10, itl_ms=20, output_tokens=1000)  # 20 s streams: all in flight
    out = tmp_path / "summary.json"
    cmd = locust_cmd("--headless", "-u", str(USERS), "-r", str(USERS), "-t", "60s",
                     "--host", sim.url, "--summary-json", str(out))  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=ROOT, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while sim.stats()["in_flight"] < USERS:
            assert proc.poll() is None and time.monotonic() < deadline, "users never started"
            time.sleep(0.1)
        proc.send_signal(sig)
        text, _ = proc.communicate(timeout=30)
    finally:
        stop_process(proc, timeout=10)
    summary = json.loads(out.read_text())
    assert summary["interrupted"] is True
    assert summary["dropped_in_flight"] == USERS  # each user's one stream, cut
    assert summary["requests"] == 0
    assert any("interrupted (Ctrl-C or SIGTERM)" in n for n in summary["notes"])
    assert f"{USERS} requests in flight then were dropped" in text


def test_a_run_that_ends_by_itself_is_not_interrupted(simulator, tmp_path: Path) -> None:
    sim = simulator(ttft_ms=5, itl_ms=1, output_tokens=4)
    out = tmp_path / "summary.json"
    cmd = locust_cmd("--headless", "-u", "2", "-r", "2", "--requests-per-user", "3",
                     "--host", sim.url, "--summary-json", str(out))  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, timeout=60, check=False)
    summary = json.loads(out.read_text())
    assert summary["interrupted"] is False and "dropped_in_flight" not in summary
    assert summary["requests"] == 6
