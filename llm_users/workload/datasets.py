"""Prompt datasets (text, JSONL, ShareGPT files), read and checked before the test.

Every reader names the file and line of what it cannot use (the conversation datasets of
``conversation_data.py`` share these readers).

Formats (auto-detected, or forced with ``fmt``):

* ``text``: one prompt per line; blank lines are skipped (use JSONL for multi-line prompts).
* ``jsonl``: one JSON object per line: ``{"prompt": "..."}`` (sent as the user message) or
  ``{"messages": [{"role": ..., "content": ...}, ...]}`` (sent as they are), each with an
  optional ``"max_tokens"``; a line may also be a ShareGPT record (``{"conversations": ...}``).
* ``sharegpt``: a JSON list of ``{"conversations": [{"from": "human", "value": ...}, ...]}``
  (``"conversation"``, ``"role"``/``"content"``, ``"user"``/``"assistant"`` are accepted too).
  The first human turn is the prompt; records without one are skipped and counted. With
  ``use_output_len`` the first answer after it sets that request's max_tokens: its length in
  tokens by ``counter`` if one is given, else in whitespace-separated words (a rough stand-in:
  one English word is about 1.3 tokens); records without a non-empty answer are then skipped.

Detection: a ``.txt`` file is text; otherwise a file starting with ``[{`` (or any ``[`` in a
``.json`` file) is ShareGPT, one starting with ``{"`` is JSONL, and anything else is JSONL for
``.json``/``.jsonl``/``.ndjson`` and text for other names.

The whole file is read and checked before the test, one line or record at a time (a ShareGPT
file is never parsed as a whole); only the prompts are kept. Nothing in a file is evaluated.

Distributed runs: every process loads the file itself, so it must exist on every worker
machine. With ``partition=(i, n)`` worker ``i`` of ``n`` keeps the usable prompts ``i, i+n,
i+2n, ...`` (0-based, in file order): the workers' shares are disjoint and together cover the
file once per pass. With ``partition=(0, 1)`` and ``order="shuffle"`` every worker goes through
the whole list in its own random order (give each a different seed, e.g. seed + worker index;
``seed=None`` draws one). Build one source per process before the test and hand the same object
to all its users: ``next()`` never yields to gevent, so the users share one cursor safely.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import ConfigError
from .files import (
    JsonList,
    detect_format,
    file_lines,
    json_line,
    short_repr,
)
from .prompts import Prompt
from .tokenizer import Counter

__all__ = ["ANSWER_ROLES", "FORMATS", "HUMAN_ROLES", "MAX_TOKENS", "DatasetPrompts", "load_dataset"]

FORMATS = ("text", "jsonl", "sharegpt")
ORDERS = ("sequential", "shuffle")
Item = tuple[Prompt, int | None]

_NEEDS = 'a line needs "prompt" (a string) or "messages" (a list of {role, content})'
_NEEDS_SHAREGPT = 'a record needs "conversations" (a list of {from, value})'
HUMAN_ROLES = frozenset({"human", "user"})
ANSWER_ROLES = frozenset({"gpt", "assistant", "chatgpt", "bard", "bing", "model"})
# A token count above this (max_tokens, a trace's lengths) is refused: the longest context
# windows offered are 10M tokens; a larger count is a mistake that would allocate its prompt
# or ask the server for more than any model can give.
MAX_TOKENS = 10_000_000


class _Invalid(Exception):
    """A record is unusable; the caller adds the file and line."""


class DatasetPrompts:
    """The prompts of a loaded dataset: ``next()`` cycles through this process's share of them."""

    def __init__(self, items: Sequence[Item], *, order: str = "sequential",
                 seed: int | None = None, partition: tuple[int, int] = (0, 1),
                 path: str = "dataset", total: int | None = None,
                 skipped: int = 0) -> None:  # fmt: skip
        index, count = _check(order, partition)
        picks: Sequence[int] = range(index, len(items), count)
        if not picks:
            raise _empty_share(path, len(items), partition)
        if order == "shuffle":
            picks = list(picks)
            random.Random(seed).shuffle(picks)  # once, here: no reshuffling on the hot path
        self._items, self._picks, self._pos = items, picks, 0
        self.path, self.order, self.skipped = path, order, skipped
        self.total = len(items) if total is None else total  # usable prompts in the whole file

    def __len__(self) -> int:
        return len(self._picks)

    def next(self) -> tuple[Prompt, int | None]:
        item = self._items[self._picks[self._pos]]
        self._pos = (self._pos + 1) % len(self._picks)
        return item


def load_dataset(path: str | os.PathLike[str], *, fmt: str | None = None,
                 use_output_len: bool = False, counter: Counter | None = None,
                 order: str = "sequential", seed: int | None = None,
                 partition: tuple[int, int] = (0, 1)) -> DatasetPrompts:  # fmt: skip
    """Read and check the whole dataset file now; keep only this process's share of prompts."""
    path = os.fspath(path)
    index, count = _check(order, partition)  # before reading: a bad option fails fast
    if fmt is None:
        fmt = detect_format(path)
    elif fmt not in FORMATS:
        raise ConfigError(f"dataset format {fmt!r} is not one of {', '.join(FORMATS)}")
    items: list[Item] = []
    total = skipped = 0
    for item in _read(path, fmt, use_output_len, counter):
        if item is None:
            skipped += 1
            continue
        if total % count == index:  # the other workers keep the rest: memory stays 1/n each
            items.append(item)
        total += 1
    if not total:
        if skipped:
            what = "a non-empty first human turn" + (" and answer" if use_output_len else "")
            raise ConfigError(f"{path}: no prompts: all {skipped} records lack {what}")
        raise ConfigError(f"{path}: empty: no prompts")
    if not items:
        raise _empty_share(path, total, partition)
    return DatasetPrompts(items, order=order, seed=seed, path=path, total=total,
                          skipped=skipped)  # fmt: skip


def _check(order: str, partition: tuple[int, int]) -> tuple[int, int]:
    if order not in ORDERS:
        raise ConfigError(f"dataset order {order!r} is not one of {', '.join(ORDERS)}")
    index, count = partition
    if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
        raise ConfigError(f"dataset partition {partition!r}: needs (index, count), "
                          "0 <= index < count")  # fmt: skip
    return index, count


def _empty_share(path: str, total: int, partition: tuple[int, int]) -> ConfigError:
    index, count = partition
    return ConfigError(f"{path}: {total} prompt(s) leave none for partition {index} of {count}")


def _read(path: str, fmt: str, use_output_len: bool,
          counter: Counter | None) -> Iterator[Item | None]:  # fmt: skip
    try:
        if fmt == "text":
            yield from ((line, None) for _, line in file_lines(path) if line.strip())
        elif fmt == "jsonl":
            for number, line in file_lines(path):
                if line.strip():
                    obj = json_line(path, number, line)
                    yield _at(path, number, _jsonl_item, obj, use_output_len, counter)
        else:
            for number, record, obj in JsonList(path):
                where = f"{number}: record {record}"  # a record's first line, then its index
                yield _at(path, where, _sharegpt_item, obj, use_output_len, counter)
    except OSError as exc:  # a read error after a successful open (e.g. a network drive)
        raise ConfigError(f"{path}: cannot read the dataset file ({exc.strerror})") from None


def _at(path: str, where: object, parse: Callable[..., Item | None], *args: Any) -> Item | None:
    try:
        return parse(*args)
    except _Invalid as exc:
        raise ConfigError(f"{path}:{where}: {exc}") from None


def _jsonl_item(obj: Any, use_output_len: bool, counter: Counter | None) -> Item | None:
    if not isinstance(obj, dict):
        raise _Invalid(_NEEDS)
    if "conversations" in obj or "conversation" in obj:
        return _sharegpt_item(obj, use_output_len, counter)
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if isinstance(prompt, str) and messages is None:
        if not prompt.strip():
            raise _Invalid('"prompt" is empty')
        return prompt, _max_tokens(obj.get("max_tokens"))
    if prompt is None and messages is not None:
        return _messages(messages), _max_tokens(obj.get("max_tokens"))
    if prompt is not None and messages is not None:
        raise _Invalid('a line has both "prompt" and "messages": keep one')
    raise _Invalid(_NEEDS)


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _Invalid(f'"messages" must be a non-empty list of {{role, content}}, '
                       f"got {short_repr(value)}")  # fmt: skip
    for i, m in enumerate(value):
        ok = isinstance(m, dict) and isinstance(m.get("role"), str)
        if not ok or not isinstance(m.get("content"), (str, list)):
            raise _Invalid(f'messages[{i}] needs "role" (a string) and "content" (a string '
                           f"or a list of parts), got {short_repr(m)}")  # fmt: skip
    return value


def _max_tokens(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TOKENS
    if value is None or ok:
        return value
    raise _Invalid(f'"max_tokens" must be a whole number from 1 to {MAX_TOKENS:,}, '
                   f"got {short_repr(value)}")  # fmt: skip


def _sharegpt_item(obj: Any, use_output_len: bool,
                   counter: Counter | None) -> Item | None:  # fmt: skip
    """(first human turn, its answer's length or None); None if the record has no prompt."""
    turns = obj.get("conversations", obj.get("conversation")) if isinstance(obj, dict) else None
    if not isinstance(turns, list):
        raise _Invalid(_NEEDS_SHAREGPT)
    prompt = None
    for i, turn in enumerate(turns):  # only the turns used are checked: the rest is never sent
        if not isinstance(turn, dict):
            raise _Invalid(f"conversations[{i}] is not an object: {short_repr(turn)}")
        role = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if not isinstance(role, str) or not isinstance(text, str):
            raise _Invalid(f'conversations[{i}] needs "from" and "value" (strings), '
                           f"got {short_repr(turn)}")  # fmt: skip
        role = role.lower()
        if prompt is None:
            if role in HUMAN_ROLES:
                if not text.strip():
                    return None
                if not use_output_len:
                    return text, None
                prompt = text
        elif role in ANSWER_ROLES:
            n = counter(text) if counter is not None else len(text.split())
            return (prompt, n) if n > 0 else None
    return None
