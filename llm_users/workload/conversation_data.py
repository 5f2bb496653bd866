"""Conversation datasets: every user turn of each conversation, with its recorded answers.

* JSONL, one conversation per line: ``{"messages": [{role, content}, ...]}`` (system,
  user and assistant messages; an assistant message is the recorded answer to the user turn
  before it), ``{"turns": ["...", "..."]}`` (user turns only), ``{"prompt": "..."}`` (one
  turn) or a ShareGPT record. A line without a user turn is an error naming the line.
* ShareGPT JSON: a list of ``{"conversations": [{"from": "human"|"gpt", "value"}, ...]}``;
  every human turn is a turn. Records without one are skipped and counted (real ShareGPT
  files have some), as for single prompts.

``max_turns`` keeps a conversation's first turns only (None: every turn). The whole file is
read and checked before the test.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError
from .conversation import Script, ScriptedConversations
from .datasets import ANSWER_ROLES, HUMAN_ROLES
from .files import JsonList, detect_format, file_lines, json_line, short_repr

__all__ = ["load_conversations"]


class _NoUserTurn(Exception):
    pass


def load_conversations(
    path: str,
    *,
    fmt: str | None = None,
    max_turns: int | None = None,
    order: str = "sequential",
    seed: int | None = None,
    partition: tuple[int, int] = (0, 1),
) -> ScriptedConversations:
    """Read and check the whole file now; raises ConfigError naming the file and line."""
    path = os.fspath(path)
    fmt = fmt or detect_format(path)
    scripts: list[Script] = []
    skipped = 0
    if fmt == "text":
        raise ConfigError(
            f"{path}: a text file holds single prompts; conversations (--turns) need JSONL "
            '({"messages": [...]} or {"turns": [...]} per line) or ShareGPT JSON'
        )
    if fmt == "jsonl":
        for number, line in file_lines(path):
            if not line.strip():
                continue
            obj = json_line(path, number, line)
            try:
                scripts.append(_jsonl_script(obj, max_turns))
            except _NoUserTurn as exc:
                raise ConfigError(
                    f"{path}:{number}: no user turn in this conversation{exc}"
                ) from None
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: {exc}") from None
    else:
        for number, record, obj in JsonList(path):
            try:
                scripts.append(_sharegpt_script(obj, max_turns))
            except _NoUserTurn:
                skipped += 1
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: record {record}: {exc}") from None
    if not scripts:
        why = f": all {skipped} records lack a human turn" if skipped else ""
        raise ConfigError(f"{path}: no conversations{why}")
    return ScriptedConversations(scripts, order=order, seed=seed, partition=partition, path=path)


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: keep the text ones
        return "".join(
            str(p.get("text", "")) for p in value if isinstance(p, dict) and p.get("type") == "text"
        )
    raise ValueError(f"{what} must be a string, got {short_repr(value)}")


def _script(pairs: list[tuple[str, str]], max_turns: int | None) -> Script:
    """(role, text) in order -> a Script; role is system, user or assistant."""
    system: str | None = None
    turns: list[str] = []
    answers: list[str | None] = []
    for role, text in pairs:
        if role == "system" and not turns and system is None:
            system = text
        elif role == "user" and text.strip():
            turns.append(text)
            answers.append(None)
        elif role == "assistant" and turns and answers[-1] is None:
            answers[-1] = text
    if not turns:
        raise _NoUserTurn()
    if max_turns is not None:
        turns, answers = turns[:max_turns], answers[:max_turns]
    return Script(tuple(turns), tuple(answers), system)


def _jsonl_script(obj: Any, max_turns: int | None) -> Script:
    if not isinstance(obj, dict):
        raise ValueError('a line needs "messages", "turns" or "prompt" (a JSON object)')
    if "conversations" in obj or "conversation" in obj:
        return _sharegpt_script(obj, max_turns)
    if "turns" in obj:
        turns = obj["turns"]
        if not isinstance(turns, list):
            raise ValueError(f'"turns" must be a list of strings, got {short_repr(turns)}')
        pairs = [("user", _text(t, f"turns[{i}]")) for i, t in enumerate(turns)]
    elif "messages" in obj:
        messages = obj["messages"]
        if not isinstance(messages, list):
            raise ValueError(
                f'"messages" must be a list of {{role, content}}, got {short_repr(messages)}'
            )
        pairs = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise ValueError(f'messages[{i}] needs "role" and "content", got {short_repr(m)}')
            pairs.append((m["role"].lower(), _text(m.get("content"), f"messages[{i}].content")))
    elif "prompt" in obj:
        pairs = [("user", _text(obj["prompt"], '"prompt"'))]
    else:
        raise ValueError('a line needs "messages", "turns" or "prompt"')
    try:
        return _script(pairs, max_turns)
    except _NoUserTurn:
        roles = ", ".join(r for r, _ in pairs) or "nothing"
        raise _NoUserTurn(f" (it has: {roles})") from None


def _sharegpt_script(obj: Any, max_turns: int | None) -> Script:
    turns = obj.get("conversations", obj.get("conversation")) if isinstance(obj, dict) else None
    if not isinstance(turns, list):
        raise ValueError('a record needs "conversations" (a list of {from, value})')
    pairs = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise ValueError(f"conversations[{i}] is not an object: {short_repr(turn)}")
        role = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if not isinstance(role, str) or not isinstance(text, str):
            raise ValueError(f'conversations[{i}] needs "from" and "value" (strings)')
        role = role.lower()
        kind = "user" if role in HUMAN_ROLES else "assistant" if role in ANSWER_ROLES else role
        pairs.append((kind, text))
    return _script(pairs, max_turns)
