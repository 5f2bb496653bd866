"""The simulator's tokenizer: one WordLevel token per vocabulary word, Whitespace-split."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from .vocab import all_words

UNK = "[UNK]"


def build_tokenizer() -> Tokenizer:
    """A fresh tokenizer: every simulated token counts 1, any other word/punct run 1."""
    vocab = {UNK: 0}
    for word in all_words():
        vocab[word] = len(vocab)
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = Whitespace()
    return tok


@lru_cache(maxsize=1)
def shared_tokenizer() -> Tokenizer:
    """One tokenizer per process for counting prompt tokens."""
    return build_tokenizer()


def count_tokens(text: str) -> int:
    """Number of tokens of ``text`` under the simulator's tokenizer."""
    if not text:
        return 0
    return len(shared_tokenizer().encode(text, add_special_tokens=False).ids)


def token_ids(text: str) -> tuple[int, ...]:
    """The token ids of ``text`` under the simulator's tokenizer (the prefix cache's keys)."""
    if not text:
        return ()
    return tuple(shared_tokenizer().encode(text, add_special_tokens=False).ids)


def save_tokenizer(directory: str | Path) -> Path:
    """Write a Hugging Face tokenizer folder that ``AutoTokenizer`` loads offline."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer().save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": UNK,
        "model_max_length": 1_000_000,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps({"unk_token": UNK}) + "\n")
    return out
