"""Multi-turn conversations against the simulator: what each turn sends, per-turn figures."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from llm_users.record import RequestRecord
from llm_users.wire.client import LLMClient
from tests.helpers import mean, run_in_process

Sent = list[tuple[int, dict[str, Any], RequestRecord]]  # (client id, body, record)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Every request body as it was sent, with its record (the request itself is real)."""
    out: Sent = []
    real = LLMClient.request

    def request(self: LLMClient, body: dict[str, Any], **kw: Any) -> RequestRecord:
        copy = orjson.loads(orjson.dumps(body))
        rec = real(self, body, **kw)
        out.append((id(self), copy, rec))
        return rec

    monkeypatch.setattr(LLMClient, "request", request)
    return out


def _by_client(sent: Sent) -> dict[int, list[tuple[dict[str, Any], RequestRecord]]]:
    mine: dict[int, list[tuple[dict[str, Any], RequestRecord]]] = defaultdict(list)
    for cid, body, rec in sent:
        mine[cid].append((body, rec))
    return mine


def test_each_turn_sends_the_history_with_the_servers_answers(simulator, sent):
    sim = simulator(ttft_ms=20, itl_ms=1, output_tokens=6)
    plugin = run_in_process(
        sim.url, "--stream", "--turns", "3", "--prompt-type", "random", "--seed", "1",
        "--requests-per-user", "6", users=2,
    )  # fmt: skip
    s = plugin.last_summary
    server = sim.records()
    assert len(server) == 12 == len(sent) and s["requests"] == 12
    # Turn k: the system prompt and 2k - 1 messages (k user turns, k - 1 answers) = 2k.
    assert Counter(r["num_messages"] for r in server) == {2: 4, 4: 4, 6: 4}
    for r in server:
        k = r["num_messages"] // 2
        assert r["messages"] == ["system"] + ["user", "assistant"] * (k - 1) + ["user"]
    for turns in _by_client(sent).values():
        assert [rec.turn for _, rec in turns] == [1, 2, 3, 1, 2, 3]
        for start in (0, 3):
            conv = turns[start : start + 3]
            for k, (body, rec) in enumerate(conv, 1):
                msgs = body["messages"]
                assert rec.turn == k and rec.ok
                assert len(msgs) == 2 * k
                # the answers sent back are exactly the texts the server streamed before
                answers = [m["content"] for m in msgs if m["role"] == "assistant"]
                assert answers == ["".join(r.texts) for _, r in conv[: k - 1]]
                assert all(len(a.split()) >= 1 for a in answers)
                users = [m["content"] for m in msgs if m["role"] == "user"]
                assert users[:-1] == [
                    [m for m in b["messages"] if m["role"] == "user"][-1]["content"]
                    for b, _ in conv[: k - 1]
                ]
            assert conv[-1][1].conversation_done
    # Per-turn figures: 4 requests each, prompt tokens as the server counted them.
    rows = s["turns"]
    assert [r["turn"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert row["requests"] == 4 and row["failures"] == 0
        theirs = [r["prompt_tokens"] for r in server if r["num_messages"] == 2 * row["turn"]]
        assert row["prompt_tokens_mean"] == mean(theirs)
        assert row["ttft_ms"]["p50"] is not None and row["e2e_ms"]["mean"] is not None
    assert (
        rows[0]["prompt_tokens_mean"]
        < rows[1]["prompt_tokens_mean"]
        < rows[2]["prompt_tokens_mean"]
    )
    assert s["conversations"]["completed"] == 4
    assert s["conversations"]["truncated_requests"] == 0


def test_recorded_history_from_a_jsonl_dataset(simulator, sent, tmp_path):
    data = tmp_path / "conv.jsonl"
    lines = [
        {"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello there"},
            {"role": "user", "content": "Name a colour"},
            {"role": "assistant", "content": "Blue"},
            {"role": "user", "content": "Another"},
        ]},
        {"turns": ["One", "Two"]},
    ]  # fmt: skip
    data.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    sim = simulator(ttft_ms=5, itl_ms=1, output_tokens=4)
    plugin = run_in_process(
        sim.url, "--dataset", str(data), "--turns", "all", "--history", "recorded",
        "--requests-per-user", "5", users=1,
    )  # fmt: skip
    bodies = [body["messages"] for _, body, _ in sent]
    assert len(bodies) == 5
    assert bodies[0] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert bodies[2] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there"},
        {"role": "user", "content": "Name a colour"},
        {"role": "assistant", "content": "Blue"},
        {"role": "user", "content": "Another"},
    ]
    # {"turns": ...} has no recorded answers: the server's own is sent back
    assert bodies[3][0]["content"] == "You are a helpful assistant."
    assert bodies[4][1:3] == [
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "".join(sent[3][2].texts)},
    ]
    s = plugin.last_summary
    assert [r["requests"] for r in s["turns"]] == [2, 2, 1]
    assert s["conversations"]["completed"] == 2


def test_max_context_tokens_leaves_out_the_oldest_turns(simulator, sent, tokenizer_dir):
    # 1 simulated token = 1 tokenizer token: turns of 10, answers of 20. With 60 tokens turn 3
    # (10+20+10+20+10 = 70) and turn 4 keep only the previous turn: 3 messages.
    sim = simulator(ttft_ms=5, itl_ms=1, output_tokens=20)
    plugin = run_in_process(
        sim.url, "--stream", "--turns", "4", "--input-tokens", "10", "--tokenizer",
        str(tokenizer_dir), "--system-prompt", "", "--max-context-tokens", "60",
        "--requests-per-user", "4", users=1,
    )  # fmt: skip
    server = sorted(sim.records(), key=lambda r: r["id"])
    assert [r["num_messages"] for r in server] == [1, 3, 3, 3]
    assert [rec.truncated for _, _, rec in sent] == [False, False, True, True]
    answers = ["".join(rec.texts) for _, _, rec in sent]
    assert sent[3][1]["messages"][1] == {"role": "assistant", "content": answers[2]}
    s = plugin.last_summary
    assert s["conversations"]["truncated_requests"] == 2
    assert s["conversations"]["completed"] == 1
