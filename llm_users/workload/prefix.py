"""Shared-prefix prompts: K prefixes of exactly P tokens, each request one of them + a suffix.

What a server's prefix cache (vLLM automatic prefix caching, SGLang's radix cache) is meant
for: many requests starting with the same long system prompt or document.
"""

from __future__ import annotations

import random

from ..errors import ConfigError
from .exact import ExactText
from .prompts import Prompt

__all__ = ["SharedPrefixPrompts"]


class SharedPrefixPrompts:
    """``next()`` hands out prompts of a shared prefix (drawn per request) + a unique suffix.

    Prefixes are ``prefix_tokens`` tokens exactly, suffixes ``suffix_tokens``; every prompt
    encodes to exactly its prefix's ids then its suffix's (checked when it is built). Prefixes
    start with different tokens, and so do the suffixes that follow one prefix, so two prompts
    share exactly ``prefix_tokens`` tokens or none (while the vocabulary has words enough).

    ``as_system``: the prefix is the chat system message and the suffix the user turn; else
    the prompt is one text, prefix first. ``prefix_seed`` must be the same in every process
    (workers then share the prefixes); ``seed`` draws the suffixes and each request's prefix.
    All ``pool_size`` prompts are built before the test: after that many requests of one
    process they come round again (and then hit the cache whole).
    """

    def __init__(self, prefix_tokens: int, prefix_count: int, suffix_tokens: int, *,
                 tokenizer_name: str, as_system: bool = False, prefix_seed: int | None = 0,
                 seed: int | None = None, pool_size: int = 512) -> None:  # fmt: skip
        self.prefix_tokens, self.prefix_count = prefix_tokens, prefix_count
        self.suffix_tokens = suffix_tokens
        gen = ExactText(tokenizer_name)
        prng = random.Random(prefix_seed)
        self.prefixes: list[tuple[list[int], str]] = []
        firsts: set[int] = set()
        for k in range(prefix_count):
            ids, text = gen.exact(prng, prefix_tokens, f"shared prefix {k}", frozenset(firsts))
            firsts.add(ids[0])
            self.prefixes.append((ids, text))
        rng = random.Random(seed)
        followers: list[set[int]] = [set() for _ in range(prefix_count)]
        pool: list[tuple[Prompt, int]] = []
        for i in range(pool_size):
            k = rng.randrange(prefix_count)
            pids, ptext = self.prefixes[k]
            what = f"shared-prefix prompt {i}"
            whole: str | None = None
            for _ in range(8):
                ids, stext = gen.exact(rng, suffix_tokens, what, frozenset(followers[k]))
                whole = stext if as_system else gen.text(pids + ids)  # no merge where they meet
                if whole is not None:
                    break
            if whole is None:
                raise ConfigError(f"{what}: tokenizer {tokenizer_name!r} merges the prefix "
                                  "with every suffix drawn")  # fmt: skip
            followers[k].add(ids[0])
            prompt: Prompt = (
                [{"role": "system", "content": ptext}, {"role": "user", "content": stext}]
                if as_system
                else whole
            )
            pool.append((prompt, k))
        self._pool, self._pos = pool, 0

    def __len__(self) -> int:
        return len(self._pool)

    def next(self) -> tuple[Prompt, int | None]:
        prompt, _ = self._pool[self._pos]
        self._pos = (self._pos + 1) % len(self._pool)
        return prompt, None

    def prefix_of(self, i: int) -> int:
        """Which prefix the ``i``-th prompt of the pool starts with."""
        return self._pool[i % len(self._pool)][1]
