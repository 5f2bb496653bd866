"""Token ids of random vocabulary words, and their text checked to encode back to those ids."""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..errors import ConfigError
from .synthetic import Codec, plain_words

__all__ = ["ExactText"]

_ATTEMPTS = 8


class ExactText:
    """Random word-token sequences of a tokenizer, and texts that encode to exactly them.

    Words are tokens that decode to one word and re-encode to themselves (as for
    ``SyntheticPrompts``); a text is only handed out once ``encode(text) == ids``, so its
    length, and what it shares with another text, is exact in tokens.
    """

    def __init__(self, tokenizer_name: str, seed: int | None = 0) -> None:
        self.name = tokenizer_name
        self.codec = Codec(tokenizer_name)
        # A fixed order (sorted), so the same seed draws the same ids in every process.
        self.words = sorted(plain_words(self.codec, random.Random(seed), tokenizer_name))

    def draw(
        self, rng: random.Random, n: int, first_not_in: frozenset[int] = frozenset()
    ) -> list[int]:
        """n word ids; the first one outside ``first_not_in`` when the vocabulary allows."""
        ids = rng.choices(self.words, k=n)
        if n and first_not_in:
            fresh = [w for w in self.words if w not in first_not_in]
            if fresh:
                ids[0] = rng.choice(fresh)
        return ids

    def text(self, ids: Sequence[int]) -> str | None:
        """The text of ``ids``, or None when it does not encode back to exactly them."""
        text = self.codec.decode(list(ids))
        return text if self.codec.encode(text) == list(ids) else None

    def exact(
        self, rng: random.Random, n: int, what: str, first_not_in: frozenset[int] = frozenset()
    ) -> tuple[list[int], str]:
        """Draw until a text of exactly those n ids comes out; ConfigError if it never does."""
        for _ in range(_ATTEMPTS):
            ids = self.draw(rng, n, first_not_in)
            text = self.text(ids)
            if text is not None:
                return ids, text
        raise ConfigError(f"{what}: tokenizer {self.name!r} gives no text of exactly {n} "
                          "tokens from random words")  # fmt: skip
