"""Conversation datasets and a user's dialogue, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_users.errors import ConfigError
from llm_users.record import RequestRecord
from llm_users.workload.conversation import Dialogue, PromptConversations, Script
from llm_users.workload.conversation_data import load_conversations
from llm_users.workload.prompts import SeedPrompts
from tests.helpers import parse_options

FIXTURES = Path(__file__).parents[2] / "fixtures" / "datasets"


def test_sharegpt_keeps_every_human_turn_and_its_answer():
    convs = load_conversations(str(FIXTURES / "sharegpt.json"))
    scripts = [convs.next_script() for _ in range(len(convs))]
    b2 = next(s for s in scripts if s.system == "You are terse.")
    assert b2.turns == ("Say hi.", "Again.")
    assert b2.answers == ("Hi.", "Hi again, friend.")
    assert scripts[0].turns == ("How do I boil an egg?",)
    capped = load_conversations(str(FIXTURES / "sharegpt.json"), max_turns=1)
    assert all(len(capped.next_script().turns) == 1 for _ in range(len(capped)))


def test_jsonl_forms_and_errors(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"turns": ["a", "b"]}\n{"prompt": "p"}\n')
    convs = load_conversations(str(path))
    assert [convs.next_script().turns for _ in range(2)] == [("a", "b"), ("p",)]
    path.write_text('{"turns": ["a"]}\n\n{"turns": []}\n')
    with pytest.raises(ConfigError, match=r"c\.jsonl:3: no user turn in this conversation"):
        load_conversations(str(path))
    path.write_text('{"turns": "a"}\n')
    with pytest.raises(ConfigError, match=r'c\.jsonl:1: "turns" must be a list'):
        load_conversations(str(path))
    text = tmp_path / "p.txt"
    text.write_text("one\n")
    with pytest.raises(ConfigError, match="need JSONL"):
        load_conversations(str(text))


def test_workers_share_the_conversations(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(f'{{"turns": ["t{i}"]}}\n' for i in range(5)))
    shares = [load_conversations(str(path), partition=(i, 2)) for i in range(2)]
    got = [[s.next_script().turns[0] for _ in range(len(s))] for s in shares]
    assert got == [["t0", "t2", "t4"], ["t1", "t3"]]


def _record(ok: bool = True, text: str = "answer") -> RequestRecord:
    rec = RequestRecord(endpoint="chat", stream=True, start=0.0, start_wall=0.0)
    rec.texts = [text]
    if not ok:
        rec.fail("http_500", "boom")
    return rec


def test_a_failed_turn_ends_the_conversation():
    source = PromptConversations(SeedPrompts("short"), 3)
    d = Dialogue(source, lambda m, _n: {"messages": m}, system_prompt="S")
    assert len(d.next_body()["messages"]) == 2
    d.finish(_record())
    assert len(d.next_body()["messages"]) == 4
    rec = _record(ok=False)
    d.finish(rec)
    assert rec.turn == 2 and not rec.conversation_done
    assert len(d.next_body()["messages"]) == 2  # a new conversation


def test_truncation_keeps_the_system_and_latest_turn():
    class One:
        def next_script(self) -> Script:
            return Script(("aaaa", "bb", "cc"))

    d = Dialogue(One(), lambda m, _n: {"messages": m}, system_prompt="sys",
                 max_context=8, counter=len)  # fmt: skip
    d.next_body()
    d.finish(_record(text="xx"))  # history: aaaa(4) xx(2)
    d.next_body()  # sys 3 + 6 + bb 2 = 11 > 8: turn 1 left out
    rec = _record(text="yy")
    d.finish(rec)
    assert rec.truncated
    body = d.next_body()  # sys 3 + bb 2 + yy 2 + cc 2 = 9 > 8: only the latest stays
    assert [m["content"] for m in body["messages"]] == ["sys", "cc"]


@pytest.mark.parametrize(
    ("given", "kept", "shown"), [("0", 0, "0"), ("3", 3, "3"), ("all", None, "all")]
)
def test_turns_all_is_decoded_once(tmp_path: Path, given: str, kept: int | None, shown: str):
    from llm_users.options.settings import Settings

    dataset = tmp_path / "c.jsonl"
    dataset.write_text('{"turns": ["a", "b", "c", "d"]}\n')
    s = Settings.from_options(parse_options("--turns", given, "--dataset", str(dataset)), {})
    assert (s.turns_kept, s.turns_shown) == (kept, shown)
    if kept != 0:  # the loader keeps that many turns, or every one
        convs = load_conversations(str(dataset), max_turns=s.turns_kept)
        assert len(convs.next_script().turns) == (kept or 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--turns", "all"], "--turns all needs a conversation --dataset"),
        (["--turns", "all", "--endpoint", "completions"], "--turns all needs --endpoint chat"),
        (["--history", "recorded"], "--history is for conversations: add --turns N"),
        (["--turns", "2", "--max-context-tokens", "100"], "needs --tokenizer"),
        (["--turns", "two"], "--turns must be a whole number or all"),
    ],
)
def test_conversation_options_are_checked(args, message):
    from llm_users.options.settings import Settings

    with pytest.raises(ConfigError, match=message):
        Settings.from_options(parse_options(*args), environ={})
