"""Tokenizer loading (once, before users start) and token counting.

Counting a long text takes about 1 us per token and holds the GIL (``Tokenizer.encode``):
done in the gevent loop it would delay every other user's reads. Long texts are therefore
counted with ``encode_batch``, which releases the GIL, in gevent's thread pool: the user
that asked waits, the loop goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["OFFLOAD_CHARS", "Counter", "load_counter", "load_tokenizer"]

OFFLOAD_CHARS = 1000  # longer texts are counted off the loop (~200+ tokens, ~0.2+ ms)
Counter = Callable[[str], int]  # text -> its tokens (what load_counter returns)


@lru_cache(maxsize=4)
def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The Hugging Face tokenizer ``name`` (a hub name or a folder), loaded once per process.

    Loading is slow (hundreds of ms): call it before any user starts, never in a task. Every
    user of ``--tokenizer`` (counting, synthetic and exact-token prompts) loads it here, so a
    bad name gives one message whichever needed it first.
    """
    # "org/name" is a hub name; an absolute or relative path must exist here
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_like_path and not os.path.isdir(os.path.expanduser(name)):
        raise ConfigError(f"--tokenizer folder {name!r} does not exist")
    try:
        from transformers import AutoTokenizer  # heavy import: only when --tokenizer is used

        tok: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # transformers raises OSError, ValueError, HF errors...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        where = "folder" if os.path.isdir(name) else "name or folder"
        raise ConfigError(f"--tokenizer {where} {name!r} cannot be loaded: {first}") from None
    return tok


@lru_cache(maxsize=4)
def load_counter(name: str) -> Counter:
    """A function counting the tokens of a text with the Hugging Face tokenizer ``name``.

    Special tokens are not added: only the generated text is counted, as the seed does.
    """
    tok = load_tokenizer(name)
    backend = getattr(tok, "backend_tokenizer", None)  # only the fast (Rust) tokenizers have one
    if backend is not None:  # the Rust tokenizer directly: no Python-side wrapping per call
        encode, encode_batch = backend.encode, backend.encode_batch

        def count_off_loop(text: str) -> int:
            return len(encode_batch([text], add_special_tokens=False)[0].ids)

        def count(text: str) -> int:
            if len(text) < OFFLOAD_CHARS:
                return len(encode(text, add_special_tokens=False).ids) if text else 0
            import gevent

            return int(gevent.get_hub().threadpool.apply(count_off_loop, (text,)))

        return count

    def count_slow(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False)) if text else 0

    return count_slow
