"""Synthetic prompts of an exact token length, built from a tokenizer's own words.

``Codec`` and ``plain_words`` are shared with ``exact.py`` (prefixes and traces of exact
token ids).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, cast

from ..errors import ConfigError
from .prompts import Prompt
from .tokenizer import load_tokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["Codec", "SyntheticPrompts", "plain_words"]

_SAMPLE = 4096  # vocabulary entries examined: enough words, bounded cost for 200k-entry vocabs
_MIN_WORDS = 16
_ATTEMPTS, _STEPS = 8, 32


class Codec:
    """encode/decode without special tokens, through the Rust tokenizer when there is one."""

    def __init__(self, name: str) -> None:
        tok = load_tokenizer(name)
        # only the fast (Rust) tokenizers have a backend
        self.backend: Tokenizer | None = getattr(tok, "backend_tokenizer", None)
        self.tok = tok
        if self.backend is not None:
            self.size = self.backend.get_vocab_size(with_added_tokens=False)
            added = set(self.backend.get_added_tokens_decoder())
        else:
            self.size, added = len(tok), set()
        self.reserved = added | set(tok.all_special_ids)

    def encode(self, text: str) -> list[int]:
        if self.backend is not None:
            return self.backend.encode(text, add_special_tokens=False).ids
        return self.tok.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        if self.backend is not None:
            return self.backend.decode(ids, skip_special_tokens=False)
        # a flat list of ids decodes to one str (a list of lists, to a list of them)
        return cast(str, self.tok.decode(ids, skip_special_tokens=False))


class SyntheticPrompts:
    """Random prompts of exactly ``n_tokens`` tokens (each drawn from n·(1±spread)) by a tokenizer.

    Exact means: the tokenizer encodes the prompt text, without special tokens, to exactly that
    many tokens (what ``tokenizer.load_counter`` counts); the server's prompt_tokens also include
    the chat template. A prompt is random vocabulary words (tokens that decode to one word and
    re-encode to themselves, twice in a row), decoded, re-encoded and trimmed or extended until
    the count is exact; a tokenizer for which that fails (e.g. one whose normaliser adds text to
    everything, so no token survives a round trip) is a ConfigError, never a wrong length.

    All ``pool_size`` distinct prompts are built here, before the test (about 1 ms each for 500
    tokens): ``next()`` only hands out the next one, with no tokenization in a Locust task.
    Prompts start with random words, so no prefix cache makes one cheap, but after
    ``pool_size`` requests of one process they come round again: raise it for long tests.
    """

    def __init__(self, n_tokens: int, spread: float = 0.0, *, tokenizer_name: str,
                 seed: int | None = None, pool_size: int = 256) -> None:  # fmt: skip
        if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
            raise ConfigError(f"synthetic prompt length must be at least 1 token, got {n_tokens!r}")
        if not 0.0 <= spread <= 1.0:
            raise ConfigError(f"synthetic prompt spread must be between 0 and 1, got {spread!r}")
        if pool_size < 1:
            raise ConfigError(f"synthetic prompt pool size must be at least 1, got {pool_size!r}")
        self.n_tokens, self.spread = n_tokens, spread
        self.low = max(1, round(n_tokens * (1 - spread)))
        self.high = max(self.low, round(n_tokens * (1 + spread)))
        rng = random.Random(seed)
        codec = Codec(tokenizer_name)
        words = plain_words(codec, rng, tokenizer_name)
        pool: dict[str, None] = {}  # insertion-ordered set
        for _ in range(4 * pool_size):  # a tiny vocabulary may not have pool_size distinct ones
            if len(pool) == pool_size:
                break
            n = rng.randint(self.low, self.high)
            text = _exact(codec, words, n, rng)
            if text is None:
                raise ConfigError(f"synthetic prompts: tokenizer {tokenizer_name!r} gives no "
                                  f"text of exactly {n} tokens from random words")  # fmt: skip
            pool[text] = None
        self._pool, self._pos = list(pool), 0

    def __len__(self) -> int:
        return len(self._pool)

    def next(self) -> tuple[Prompt, int | None]:
        text = self._pool[self._pos]
        self._pos = (self._pos + 1) % len(self._pool)
        return text, None


def plain_words(codec: Codec, rng: random.Random, name: str) -> list[int]:
    """Token ids that stay themselves when decoded and re-encoded, preferring whole words."""
    ids = [i for i in rng.sample(range(codec.size), min(codec.size, _SAMPLE))
           if i not in codec.reserved]  # fmt: skip
    words: list[int] = []
    others: list[int] = []
    for i in ids:
        pair = codec.decode([i, i])
        if "\ufffd" in pair or not pair.strip().isprintable() or codec.encode(pair) != [i, i]:
            continue  # a byte fragment, a control token, or one that merges with its neighbour
        word = pair.split()
        (words if len(word) == 2 and word[0] == word[1] else others).append(i)
    if len(words) >= _MIN_WORDS:
        return words
    if words or others:
        return words + others
    raise ConfigError(f"synthetic prompts: no token of tokenizer {name!r} survives decoding and "
                      "re-encoding, so exact-length prompts cannot be built")  # fmt: skip


def _exact(codec: Codec, words: list[int], n: int, rng: random.Random) -> str | None:
    """A text of random words that encodes to exactly n tokens, or None if none was found."""
    for _ in range(_ATTEMPTS):
        ids = rng.choices(words, k=n)
        for _ in range(_STEPS):
            raw = codec.decode(ids)
            text = raw.strip()
            count = len(codec.encode(text))
            if count == n:
                return text
            if text != raw and len(codec.encode(raw)) == n:
                return raw  # e.g. byte-level BPE: " word" is one token, "word" may be two
            if count < n:
                ids += rng.choices(words, k=n - count)
            elif len(ids) > 1:
                del ids[max(1, len(ids) - (count - n)) :]
            else:
                break
    return None
