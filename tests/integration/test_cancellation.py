"""Cancellation (--cancel-rate, --cancel-after, --cancel-from): the client hangs up at the asked
moment, checked against the simulator's own stamp of the hang-up; cancelled requests are
counted apart, never as failures nor in a latency figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import lag_ms, run_in_process, sim_lag_ms

AFTER_MS = 40.0
CLOSE_WITHIN_MS = 5.0  # the bound, widened by the run's measured loop lags


def _run(sim: Any, tmp_path: Path, *args: str, users: int = 4, per_user: int = 6) -> dict:
    out = tmp_path / "records.jsonl"
    plugin = run_in_process(
        sim.url, "--records", str(out), "--requests-per-user", str(per_user), "--seed", "7",
        *args, users=users,
    )  # fmt: skip
    assert plugin.last_summary is not None
    summary = dict(plugin.last_summary)
    summary["_records"] = [json.loads(line) for line in out.read_text().splitlines()]
    return summary


def _check_counts(s: dict, sim: Any, sent: int) -> list[dict]:
    """Each request the client cancelled is one the simulator saw hang up (or had already
    answered whole when the hang-up came: a timer and the last bytes at the same turn of a
    busy loop); none is a failure, and only the others are in the figures."""
    server = {r["traceparent"]: r for r in sim.records()}
    assert len(server) == sent
    ours = s["_records"]
    cancelled = [server[f"00-{r['trace_id']}-{r['span_id']}-01"] for r in ours if r["cancelled"]]
    hung_up = [r for r in cancelled if r["cancelled_at"] is not None]
    assert all(r["completed"] for r in cancelled if r["cancelled_at"] is None)
    assert all(r["cancelled_at"] is None for r in server.values() if r not in cancelled)
    assert s["cancelled"] == len(cancelled) and len(hung_up) >= len(cancelled) // 2 > 0
    assert s["failures"] == 0 and s["requests"] == sent - len(cancelled)
    assert s["cancelled_rate"] == pytest.approx(len(cancelled) / sent)
    assert all(r["failure"] is None for r in ours)
    dist = s["ttft_ms"] if s["mode"] == "streaming" else s["latency_ms"]
    assert dist["count"] == sent - len(cancelled)  # none of them in a latency figure
    return hung_up


def _tolerance_ms(s: dict, sim: Any) -> float:
    return CLOSE_WITHIN_MS + lag_ms(s) + sim_lag_ms(sim)


def test_cancel_from_sent_closes_at_the_asked_delay(simulator, tmp_path):
    # streams of ~20 + 40 x 3 ms = 140 ms: a hang-up at 40 ms is mid-stream
    sim = simulator(ttft_ms=20, itl_ms=3, output_tokens=40)
    s = _run(sim, tmp_path, "--cancel-rate", "0.5", "--cancel-after", str(AFTER_MS))
    hung_up = _check_counts(s, sim, sent=24)
    tol = _tolerance_ms(s, sim)
    for r in hung_up:
        waited_ms = (r["cancelled_at"] - r["received_at"]) * 1000
        assert abs(waited_ms - AFTER_MS) <= tol, (waited_ms, tol)
        assert r["completion_tokens"] < 40


def test_cancel_from_first_token_closes_at_the_asked_delay(simulator, tmp_path):
    sim = simulator(ttft_ms=30, itl_ms=3, output_tokens=40)
    s = _run(
        sim, tmp_path, "--cancel-rate", "0.5", "--cancel-after", "20",
        "--cancel-from", "first-token",
    )  # fmt: skip
    hung_up = _check_counts(s, sim, sent=24)
    tol = _tolerance_ms(s, sim)
    for r in hung_up:
        waited_ms = (r["cancelled_at"] - r["first_token_at"]) * 1000
        assert abs(waited_ms - 20.0) <= tol, (waited_ms, tol)


def test_cancel_without_stream_before_the_body(simulator, tmp_path):
    sim = simulator(ttft_ms=20, itl_ms=3, output_tokens=40)
    s = _run(sim, tmp_path, "--no-stream", "--cancel-rate", "0.5", "--cancel-after", str(AFTER_MS))
    hung_up = _check_counts(s, sim, sent=24)
    tol = _tolerance_ms(s, sim)
    for r in hung_up:
        waited_ms = (r["cancelled_at"] - r["received_at"]) * 1000
        assert abs(waited_ms - AFTER_MS) <= tol, (waited_ms, tol)


def test_the_same_seed_cancels_the_same_requests(simulator, tmp_path):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=30)
    picks = []
    for i in range(2):
        sim.reset()
        (tmp_path / str(i)).mkdir()
        s = _run(sim, tmp_path / str(i), "--cancel-rate", "0.3", "--cancel-after", "5", users=1,
                 per_user=20)  # fmt: skip
        picks.append([r["cancelled"] for r in s["_records"]])
    assert picks[0] == picks[1] and 0 < sum(picks[0]) < 20


def test_abort_check_frees_every_cancelled_request(simulator, tmp_path):
    sim = simulator(ttft_ms=20, itl_ms=3, output_tokens=40)
    s = _run(sim, tmp_path, "--cancel-rate", "0.5", "--cancel-after", str(AFTER_MS))
    check = s["abort_check"]
    assert check["cancelled"] == s["cancelled"] > 0
    assert check["leaked"] == 0 and check["freed"] == s["cancelled"]
    assert check["running_after"] == 0 and check["within_s"] is not None
    assert check["verdict"].startswith(f"freed {s['cancelled']} of {s['cancelled']} within")
    assert sim.stats()["running"] == 0


def test_abort_check_names_a_planted_leak(simulator, tmp_path):
    sim = simulator(ttft_ms=20, itl_ms=3, output_tokens=40, leak_cancelled=True)
    s = _run(sim, tmp_path, "--cancel-rate", "0.5", "--cancel-after", str(AFTER_MS))
    leaked = sim.stats()["leaked"]  # running when their client hung up: never freed
    assert leaked > 0 and sim.stats()["running"] == leaked
    check = s["abort_check"]
    assert check["leaked"] == leaked and check["freed"] == s["cancelled"] - leaked
    assert check["running_after"] == leaked and check["within_s"] is None
    assert check["verdict"].startswith(f"LEAK: the server still counts {leaked} requests")
    assert f"{leaked} of {s['cancelled']} cancelled requests were never freed" in check["verdict"]
