"""A prefix cache over whole blocks of prompt token ids, least recently used blocks evicted.

Each block is keyed by its tokens and its parent's key (as vLLM chains its block hashes), so a
block hits only after the very same prefix.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class PrefixCache:
    """At most ``max_blocks`` blocks of ``block_tokens`` tokens each."""

    def __init__(self, block_tokens: int, max_blocks: int) -> None:
        self.block_tokens = block_tokens
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def lookup_and_insert(self, ids: Sequence[int]) -> int:
        """Tokens of the longest whole-block prefix of ``ids`` seen before; then remember all of
        ``ids``'s whole blocks (a partial last block is never cached)."""
        size = self.block_tokens
        parent = 0
        hits, missed = 0, False
        for start in range(0, len(ids) - size + 1, size):
            key = hash((parent, tuple(ids[start : start + size])))
            if not missed and key in self._blocks:
                hits += size
                self._blocks.move_to_end(key)
            else:
                missed = True
                self._blocks[key] = None
                self._blocks.move_to_end(key)
                if len(self._blocks) > self.max_blocks:
                    self._blocks.popitem(last=False)
            parent = key
        return hits
