"""What identifies a request to the server: the W3C traceparent (--trace-context) and the
session id (--session-header), checked against what the simulator received."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from tests.helpers import run_in_process

# W3C Trace Context, version 00: lowercase hex, ids not all zero, flags 01 (sampled).
TRACEPARENT = re.compile(r"^00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-01$")


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_request_carries_a_valid_unique_traceparent_that_the_records_hold(
    simulator, tmp_path
):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=4)
    out = tmp_path / "records.jsonl"
    run_in_process(sim.url, "--stream", "--records", str(out), "--requests-per-user", "5", users=4)
    received = [r["traceparent"] for r in sim.records()]
    assert len(received) == 20
    assert all(h is not None and TRACEPARENT.match(h) for h in received), received
    assert len(set(received)) == 20  # unique per request
    assert len({h[3:35] for h in received}) == 20  # trace ids too, not only span ids
    ours = [f"00-{r['trace_id']}-{r['span_id']}-01" for r in _records(out)]
    assert sorted(ours) == sorted(received)


def test_trace_context_off_sends_none(simulator, tmp_path):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=4)
    out = tmp_path / "records.jsonl"
    run_in_process(
        sim.url, "--trace-context", "off", "--records", str(out), "--requests-per-user", "2",
        users=2,
    )  # fmt: skip
    assert [r["traceparent"] for r in sim.records()] == [None] * 4
    assert all(r["trace_id"] is None and r["span_id"] is None for r in _records(out))


def _by_trace(sim, path: Path) -> list[tuple[dict, dict]]:
    """(client record, simulator record) pairs, joined on the traceparent."""
    server = {r["traceparent"]: r for r in sim.records()}
    return [(r, server[f"00-{r['trace_id']}-{r['span_id']}-01"]) for r in _records(path)]


def test_session_header_is_one_id_per_conversation(simulator, tmp_path):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=4, record_headers="x-session-id")
    out = tmp_path / "records.jsonl"
    run_in_process(
        sim.url, "--stream", "--turns", "3", "--session-header", "x-session-id",
        "--records", str(out), "--requests-per-user", "6", users=3,
    )  # fmt: skip
    pairs = _by_trace(sim, out)
    assert len(pairs) == 18
    turns = defaultdict(list)
    for ours, theirs in pairs:
        sent = theirs["headers"]["x-session-id"]
        assert sent == ours["session_id"] and re.fullmatch(r"[0-9a-f]{32}", sent)
        turns[sent].append((ours["turn"], theirs["num_messages"]))
    # 3 users x 2 conversations of 3 turns: 6 ids, each on turns 1, 2, 3 of one history
    assert len(turns) == 6
    for sent in turns.values():
        # system + 1 user message, then + answer + user message per turn
        assert sorted(sent) == [(1, 2), (2, 4), (3, 6)], sent


def test_session_header_is_one_id_per_user_without_conversations(simulator):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=4, record_headers="x-session-id")
    run_in_process(sim.url, "--session-header", "x-session-id", "--requests-per-user", "4", users=3)
    per_id = Counter(r["headers"]["x-session-id"] for r in sim.records())
    assert sorted(per_id.values()) == [4, 4, 4] and None not in per_id
