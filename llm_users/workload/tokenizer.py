"""Tokenizer loading (once, before users start) and token counting.

Counting a long text takes about 1 us per token and holds the GIL (``Tokenizer.encode``):
done in the gevent loop it would delay every other user's reads. Long texts are therefore
counted with ``encode_batch``, which releases the GIL, in gevent's thread pool: the user
that asked waits, the loop goes on.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["OFFLOAD_CHARS", "Counter", "load_counter", "load_tokenizer"]

OFFLOAD_CHARS = 1000  # longer texts are counted off the loop (~200+ tokens, ~0.2+ ms)
# A hub name not in the local cache: how long the hub may take to accept a connection. Past
# it, it is unreachable: one line now, not transformers' retries (53 s and 46 warnings).
HUB_CONNECT_S = 3.0
HUB = "https://huggingface.co"
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
    if not os.path.isdir(os.path.expanduser(name)):
        _hub_name_reachable(name)
    try:
        from transformers import AutoTokenizer  # heavy import: only when --tokenizer is used

        tok: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # transformers raises OSError, ValueError, HF errors...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        where = "folder" if os.path.isdir(name) else "name or folder"
        raise ConfigError(f"--tokenizer {where} {name!r} cannot be loaded: {first}") from None
    return tok


def _hub_name_reachable(name: str) -> None:
    """A hub name is loaded from the local cache, or from the hub if it can be reached; else
    a ConfigError now, naming the fix (the cache is looked up without importing transformers)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(name, "tokenizer_config.json"), str)
    except Exception:  # not a valid repo id, a broken cache: not cached
        cached = False
    if cached:
        return
    fix = "give a local tokenizer folder, or download it once where the hub can be reached"
    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")):
        raise ConfigError(
            f"--tokenizer {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is "
            f"set: {fix}"
        )
    endpoint = os.environ.get("HF_ENDPOINT") or HUB
    why = _unreachable(endpoint)
    if why:
        raise ConfigError(
            f"--tokenizer {name!r} is not in the local Hugging Face cache and {endpoint} cannot "
            f"be reached ({why}): {fix}"
        )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _unreachable(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be connected to within HUB_CONNECT_S, or None if it can."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=HUB_CONNECT_S).close()
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return None


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
