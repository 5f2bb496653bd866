"""config/chat-conversation.conf as a real `locust` subprocess against the simulator."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.helpers import ROOT, run_locust

pytestmark = pytest.mark.e2e


def test_chat_conversation_config(simulator, tmp_path):
    sim = simulator(ttft_ms=20, itl_ms=2, output_tokens=10)
    out = tmp_path / "summary.json"
    proc = run_locust(
        "--config", str(ROOT / "config" / "chat-conversation.conf"), "--host", sim.url,
        "--think-time", "0", "--summary-json", str(out), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = sim.records()
    assert len(records) == 64 and all(r["completed"] for r in records)
    # 8 users x 2 conversations x 4 turns: turn k carries the system prompt and 2k - 1 messages
    assert Counter(r["num_messages"] for r in records) == {2: 16, 4: 16, 6: 16, 8: 16}
    s = json.loads(out.read_text())
    assert s["warmup"]["requests"] == 8 and s["requests"] == 56
    assert sum(r["requests"] for r in s["turns"]) == 56 and len(s["turns"]) == 4
    # a conversation is counted completed by its last turn, unless that turn was warm-up
    assert s["conversations"]["completed"] == s["turns"][3]["requests"] > 0
    assert "warm-up: 8 requests (0 failed) sent, kept out of every figure" in proc.stdout
    assert "conversations:" in proc.stdout and "TTFT p50" in proc.stdout
