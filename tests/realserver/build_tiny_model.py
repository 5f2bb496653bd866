"""Build a tiny random-weight Llama causal LM and its tokenizer, with no download.

Usage:
    python tests/realserver/build_tiny_model.py [TARGET_DIR] [--force]

TARGET_DIR defaults to ``.cache/tiny-llama`` at the repository root. The build is
deterministic (fixed seed, vocabulary built in sorted order) and takes a second or two.
It is idempotent: when TARGET_DIR already holds a complete model of the same build
version (see ``STAMP_FILE``), nothing is done.

The model is meant for serving with ``transformers serve`` on the CPU:

* Tokenizer: a ``tokenizers`` WordLevel model over a fixed lower-case English word list,
  with a Lowercase normalizer, a Whitespace pre-tokenizer and no decoder. Decoding joins
  tokens with one space, so re-tokenizing any generated text gives back exactly as many
  tokens as were generated (every vocabulary entry is one pre-token: ``\\w+`` or one
  punctuation mark).
  Words not in the vocabulary (prompts) become ``[UNK]``.
* Chat template: ChatML (``<|im_start|>role\\n...<|im_end|>\\n``), ``add_generation_prompt``
  appends ``<|im_start|>assistant\\n``.
* generation_config.json: ``do_sample=True`` (so request ``temperature``/``top_p`` take
  effect, as with real chat models) and ``suppress_tokens`` = every special token,
  EOS included: the model never stops by itself, so every completion runs to
  ``max_tokens`` (finish_reason ``length``), and every generated token decodes to a
  non-empty word. (A request may replace the whole config with ``generation_config``.)

Only this script imports torch/transformers; ``server.py`` runs it as a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Never reach the Hugging Face hub, whatever the caller's environment says.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TARGET = REPO_ROOT / ".cache" / "tiny-llama"

# Bump when anything below changes: an existing folder with another version is rebuilt.
BUILD_VERSION = 1
STAMP_FILE = ".tiny-model.json"
REQUIRED_FILES = (
    "chat_template.jinja",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
)
SEED = 1234

SPECIAL_TOKENS = ["[UNK]", "<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
UNK, PAD, BOS, EOS = "[UNK]", "<pad>", "<s>", "</s>"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Built-in corpus: the vocabulary is every distinct pre-token of these lines.
CORPUS = """
You are a helpful assistant, a system that serves a user.
Answer the question of the user briefly and clearly.
The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun.
A load test sends many requests at once and measures how long each answer takes.
Time to first token, inter token latency, time per output token and end to end latency.
Servers stream tokens as server sent events, one small chunk after another, until done.
Tell me a story about a robot who learns to paint the sea, the sky and the mountains.
What is the capital of France? Paris is the capital and the largest city of France.
Write a poem about autumn leaves falling on a quiet road near an old stone bridge.
Explain why the sky is blue, in simple words that a child of ten could understand.
Summarize the following text in three sentences and list the main ideas as points.
One two three four five six seven eight nine ten eleven twelve hundred thousand million.
Monday Tuesday Wednesday Thursday Friday Saturday Sunday morning evening night today.
red orange yellow green blue purple black white grey brown pink gold silver colour.
water fire earth air river lake ocean forest desert island valley hill cloud rain snow.
house door window garden kitchen table chair book paper pen letter music song dance.
run walk jump swim fly read write speak listen think learn teach build make find give.
big small long short fast slow hot cold new old good bad happy sad early late first last.
data model token prompt request response stream server client user latency throughput.
number value count total average median percentile minimum maximum rate second minute.
Hello, how are you? I am fine, thank you! Please, could you help me with this task?
"""


def build_vocab() -> dict[str, int]:
    from tokenizers.pre_tokenizers import Whitespace

    pre = Whitespace()
    words: set[str] = set()
    for line in CORPUS.strip().splitlines():
        words.update(piece for piece, _span in pre.pre_tokenize_str(line.lower()))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in sorted(words):
        vocab.setdefault(word, len(vocab))
    return vocab


def is_complete(target: Path) -> bool:
    """True when TARGET holds every file of a finished build of BUILD_VERSION."""
    try:
        stamp = json.loads((target / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("build_version") != BUILD_VERSION:
        return False
    return all((target / name).is_file() for name in REQUIRED_FILES)


def build(target: Path) -> None:
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.normalizers import Lowercase
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    vocab = build_vocab()
    raw = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    raw.normalizer = Lowercase()
    raw.pre_tokenizer = Whitespace()
    raw.add_special_tokens(SPECIAL_TOKENS)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token=UNK,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
        chat_template=CHAT_TEMPLATE,
    )
    special_ids = sorted(vocab[t] for t in SPECIAL_TOKENS)

    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=vocab[BOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[PAD],
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).eval()  # float32
    model.generation_config = GenerationConfig(
        bos_token_id=vocab[BOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[PAD],
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        suppress_tokens=special_ids,
    )

    # Write into a sibling temp folder, then move into place: a crash leaves no half model.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        stamp = {
            "build_version": BUILD_VERSION,
            "seed": SEED,
            "vocab_size": len(vocab),
            "special_token_ids": {t: vocab[t] for t in SPECIAL_TOKENS},
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        (tmp / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n")
        for path in (tmp, *tmp.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure(target: Path, force: bool = False) -> Path:
    target = target.resolve()
    if force or not is_complete(target):
        build(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", default=str(DEFAULT_TARGET), help="output folder")
    parser.add_argument("--force", action="store_true", help="rebuild even if complete")
    args = parser.parse_args(argv)
    target = Path(args.target)
    already = is_complete(target.resolve()) and not args.force
    path = ensure(target, force=args.force)
    print(f"{'already complete' if already else 'built'}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
