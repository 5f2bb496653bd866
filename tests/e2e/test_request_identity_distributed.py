"""A master and two workers: Messages requests with x-api-key, a traceparent per request and a
session id per conversation, as the simulator received them."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from tests.e2e.test_distributed import Cluster

pytestmark = pytest.mark.e2e

KEY = "sk-ant-DIST-0123456789abcdef"
TRACEPARENT = re.compile(r"^00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-01$")


def test_distributed_messages_with_traces_and_sessions(simulator, tmp_path, monkeypatch):
    sim = simulator(ttft_ms=5, itl_ms=1, output_tokens=5, api_key=KEY, record_headers="x-sid")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the master's; workers get it from the master
    args = ["--headless", "-u", "4", "-r", "4", "--endpoint", "messages", "--stream",
            "--turns", "2", "--session-header", "x-sid", "--requests-per-user", "4"]  # fmt: skip
    c = Cluster(tmp_path, sim.url, args)
    code, out = c.wait()
    assert code == 0, out[-3000:]
    assert KEY not in out and KEY[8:] not in out
    served = sim.records()
    assert len(served) == 16 and all(r["status"] == 200 for r in served)
    assert all(r["path"] == "/v1/messages" for r in served)
    sent = [r["traceparent"] for r in served]
    assert all(TRACEPARENT.match(h) for h in sent) and len(set(sent)) == 16
    ours = c.raw_records()  # both workers' records files
    assert sorted(f"00-{r['trace_id']}-{r['span_id']}-01" for r in ours) == sorted(sent)
    by_trace = {r["traceparent"]: r for r in served}
    turns = defaultdict(list)
    for r in ours:
        theirs = by_trace[f"00-{r['trace_id']}-{r['span_id']}-01"]
        assert theirs["headers"]["x-sid"] == r["session_id"]
        turns[r["session_id"]].append(r["turn"])
    # 4 users x 2 conversations of 2 turns, across both workers: 8 ids, turns 1 and 2 each
    assert len(turns) == 8 and all(sorted(t) == [1, 2] for t in turns.values())
