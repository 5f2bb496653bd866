"""Multi-turn conversations: where they come from, and one user's conversation in progress.

A user holds one conversation at a time, one turn in flight. Each turn sends the whole
history: the system prompt, every earlier user turn with the answer it got (the server's
own, or with ``--history recorded`` the dataset's), then the next user turn. With
``--max-context-tokens`` the oldest turns (a user turn and its answer together) are left out
until the tokenizer count fits, as a chat app does; the system prompt and the latest user
turn always stay. A failed turn ends its conversation (there is no answer to build on): the
next request starts a new one.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ConfigError
from ..record import RequestRecord
from .prompts import PromptSource
from .tokenizer import Counter

__all__ = [
    "ConversationSource",
    "Dialogue",
    "PromptConversations",
    "Script",
    "ScriptedConversations",
]

Message = dict[str, Any]


@dataclass(frozen=True)
class Script:
    """One conversation: its user turns, the recorded answer to each (or None), its own
    system prompt (None: the --system-prompt)."""

    turns: tuple[str, ...]
    answers: tuple[str | None, ...] = ()
    system: str | None = None

    def answer(self, i: int) -> str | None:
        return self.answers[i] if i < len(self.answers) else None


class ConversationSource(Protocol):
    """Hands out conversations; shared by a process's users (never yields to gevent)."""

    def next_script(self) -> Script: ...


class PromptConversations:
    """Conversations of ``turns`` user turns, each the next prompt of a prompt source (the
    seed's prompt sets, or synthetic prompts of --input-tokens each)."""

    def __init__(self, prompts: PromptSource, turns: int) -> None:
        if turns < 1:
            raise ConfigError(f"--turns must be >= 1 for prompt conversations, got {turns}")
        self.prompts, self.turns = prompts, turns

    def next_script(self) -> Script:
        turns = []
        for _ in range(self.turns):
            prompt, _max_tokens = self.prompts.next()
            if not isinstance(prompt, str):  # a message list: its last user message
                prompt = next(
                    (
                        str(m.get("content", ""))
                        for m in reversed(prompt)
                        if m.get("role") == "user"
                    ),
                    "",
                )
            turns.append(prompt)
        return Script(tuple(turns))


class ScriptedConversations:
    """A dataset's conversations, cycled. Worker ``i`` of ``n`` keeps conversations i, i+n, ...
    (``partition``); ``shuffle`` orders them once, seeded."""

    def __init__(
        self,
        scripts: Sequence[Script],
        *,
        order: str = "sequential",
        seed: int | None = None,
        partition: tuple[int, int] = (0, 1),
        path: str = "dataset",
    ) -> None:
        index, count = partition
        picks = list(range(index, len(scripts), count))
        if not picks:
            raise ConfigError(
                f"{path}: {len(scripts)} conversation(s) leave none for worker {index} of {count}"
            )
        if order == "shuffle":
            random.Random(seed).shuffle(picks)
        self._scripts, self._picks, self._pos = scripts, picks, 0
        self.path, self.total = path, len(scripts)

    def __len__(self) -> int:
        return len(self._picks)

    def next_script(self) -> Script:
        script = self._scripts[self._picks[self._pos]]
        self._pos = (self._pos + 1) % len(self._picks)
        return script


class Dialogue:
    """One user's conversation mode: the body of its next turn, then what the answer adds.

    ``body(messages, max_tokens)`` builds a request body; ``counter`` counts a text's tokens
    (needed with ``max_context``).
    """

    def __init__(
        self,
        source: ConversationSource,
        body: Callable[[list[Message], int | None], dict[str, Any]],
        *,
        system_prompt: str = "",
        recorded: bool = False,
        max_context: int = 0,
        counter: Counter | None = None,
    ) -> None:
        if max_context and counter is None:
            raise ConfigError("--max-context-tokens needs --tokenizer to count the history")
        self.source, self.body = source, body
        self.system_prompt = system_prompt
        self.recorded = recorded
        self.max_context = max_context
        self.counter = counter
        self.script: Script | None = None
        self.turn = 0  # turns of the current conversation sent so far
        self.history: list[tuple[Message, int]] = []  # (message, its tokens) of past turns
        self._system: tuple[Message, int] | None = None
        self.session_id = ""  # the current conversation's id (--session-header sends it)
        self._pending: tuple[Message, int] | None = None
        self._truncated = False

    def _tokens(self, text: str) -> int:
        return self.counter(text) if self.max_context and self.counter is not None else 0

    def _begin(self) -> Script:
        script = self.script = self.source.next_script()
        self.session_id = os.urandom(16).hex()  # new per conversation, unique across workers
        self.turn = 0
        self.history = []
        system = script.system if script.system is not None else self.system_prompt
        self._system = (
            ({"role": "system", "content": system}, self._tokens(system)) if system else None
        )
        return script

    def next_body(self) -> dict[str, Any]:
        """The request body of the next turn (of a new conversation when none is going on)."""
        script = self.script
        if script is None or self.turn >= len(script.turns):
            script = self._begin()
        text = script.turns[self.turn]
        user = {"role": "user", "content": text}
        self._pending = (user, self._tokens(text))
        kept = self._fit(self._pending)
        messages = [self._system[0]] if self._system else []
        messages += [m for m, _ in kept] + [user]
        return self.body(messages, None)

    def _fit(self, latest: tuple[Message, int]) -> list[tuple[Message, int]]:
        """The past turns that fit --max-context-tokens beside the system and latest turn."""
        self._truncated = False
        if not self.max_context:
            return self.history
        budget = self.max_context - latest[1] - (self._system[1] if self._system else 0)
        kept = self.history
        used = sum(n for _, n in kept)
        while kept and used > budget:  # drop the oldest turn: its user message and answer
            used -= kept[0][1] + kept[1][1]
            kept = kept[2:]
            self._truncated = True
        return kept

    def finish(self, rec: RequestRecord) -> None:
        """Mark ``rec`` with its turn; on success the answer joins the history."""
        script, pending = self.script, self._pending
        if script is None or pending is None:  # the body did not come from next_body()
            return
        self.turn += 1
        rec.turn = self.turn
        rec.truncated = self._truncated
        self._pending = None
        if not rec.ok:
            self.script = None  # no answer to build on: the next request starts afresh
            return
        recorded = script.answer(self.turn - 1) if self.recorded else None
        answer = recorded if recorded is not None else "".join(rec.texts)
        self.history = [
            *self.history,
            pending,
            ({"role": "assistant", "content": answer}, self._tokens(answer)),
        ]
        if self.turn >= len(script.turns):
            rec.conversation_done = True
            self.script = None
