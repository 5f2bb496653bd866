"""The simulator's capacity model: batch slots (``--max-batch``) and decode steps that slow as
the batch grows (``step_ms_per_request``), checked against its own records."""

from __future__ import annotations

import argparse

import pytest

from llm_users.simulator.config import SimConfig, add_arguments, from_namespace
from tests.unit.simulator.test_simulator import chat
from tests.unit.simulator.test_simulator_features import _stream_in_thread, words

# `sim` (the shared fast simulator, reset for each test) comes from conftest.py


def test_max_batch_is_the_max_running_knob():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert from_namespace(parser.parse_args(["--max-batch", "4"])).max_running == 4
    assert from_namespace(parser.parse_args(["--max-running", "3"])).max_running == 3


def test_step_cost_needs_the_per_stream_clock():
    with pytest.raises(ValueError, match="step_ms_per_request"):
        SimConfig(decode_clock="global", step_ms_per_request=1.0)
    with pytest.raises(ValueError, match="step_ms_per_request must be >= 0"):
        SimConfig(step_ms_per_request=-1.0)


def _last_token_after_start(rec) -> float:
    return rec["token_times"][-1] - rec["started_at"]


def test_decode_steps_slow_as_the_batch_grows(sim):
    """itl 10 ms + 20 ms per running request: alone, 9 steps after the first token take
    9 * 30 ms; two at once, 9 * 50 ms. The records show each bound."""
    ttft_s, itl_ms, per_ms, tokens = 0.005, 10.0, 20.0, 10
    sim.configure(ttft_ms=ttft_s * 1000, itl_ms=itl_ms, step_ms_per_request=per_ms)
    body = chat(max_tokens=tokens, messages=[{"role": "user", "content": words(5)}])
    out: list = []
    _stream_in_thread(sim, body, out).join(20)
    (solo,) = sim.records()
    sim.reset()
    threads = [_stream_in_thread(sim, body, out) for _ in range(2)]
    for t in threads:
        t.join(20)
    assert all(r.status == 200 and r.complete for r in out)
    duo = sim.records()
    steps = tokens - 1
    alone_s = ttft_s + steps * (itl_ms + per_ms * 1) / 1000
    paired_s = ttft_s + steps * (itl_ms + per_ms * 2) / 1000
    assert alone_s <= _last_token_after_start(solo) < paired_s
    # The two started together (no cap), so each of their steps saw both running.
    assert abs(duo[0]["started_at"] - duo[1]["started_at"]) < (itl_ms + per_ms) / 1000
    for rec in duo:
        assert _last_token_after_start(rec) >= paired_s - (itl_ms + 2 * per_ms) / 1000
