"""Synthetic prompts of an exact token length, on word-level, byte-level and Metaspace BPEs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from llm_users.errors import ConfigError
from llm_users.simulator.vocab import all_words
from llm_users.workload import synthetic
from llm_users.workload.synthetic import SyntheticPrompts
from llm_users.workload.tokenizer import load_counter


def drain(source: SyntheticPrompts, n: int | None = None) -> list:
    return [source.next() for _ in range(len(source) if n is None else n)]


CORPUS = (
    " ".join(all_words())
    + " "
    + (
        "the quick brown fox jumps over the lazy dog while the server streams tokens to many "
        "clients and the load test measures latency throughput and time to first token "
    )
    * 20
)


def _save(tok: Tokenizer, path: Path) -> str:
    path.mkdir()
    tok.save(str(path / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1_000_000}
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return str(path)


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The simulator's word-level tokenizer plus GPT-2-style and SentencePiece-style BPEs."""
    root = tmp_path_factory.mktemp("tokenizers")
    from llm_users.simulator import save_tokenizer

    out = {"wordlevel": str(save_tokenizer(root / "wordlevel"))}
    byte = Tokenizer(models.BPE())
    byte.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    byte.decoder = decoders.ByteLevel()
    byte.train_from_iterator(
        [CORPUS],
        trainers.BpeTrainer(
            vocab_size=700,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=["<|endoftext|>"],
        ),
    )
    out["bytelevel"] = _save(byte, root / "bytelevel")
    meta = Tokenizer(models.BPE(unk_token="<unk>"))
    meta.pre_tokenizer = pre_tokenizers.Metaspace()
    meta.decoder = decoders.Metaspace()
    meta.train_from_iterator(
        [CORPUS], trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>"])
    )
    out["metaspace"] = _save(meta, root / "metaspace")
    return out


@pytest.mark.parametrize("kind", ["wordlevel", "bytelevel", "metaspace"])
@pytest.mark.parametrize("n", [1, 7, 64, 500])
def test_synthetic_prompts_are_exact_and_distinct(
    tokenizer_dirs: dict[str, str], kind: str, n: int
) -> None:
    s = SyntheticPrompts(n, tokenizer_name=tokenizer_dirs[kind], seed=n, pool_size=32)
    count = load_counter(tokenizer_dirs[kind])  # the counter the metrics use
    prompts = [p for p, max_tokens in drain(s) if max_tokens is None]
    assert [count(p) for p in prompts] == [n] * len(prompts)
    assert len(set(prompts)) == len(prompts) == len(s)
    if n > 1:
        assert len(s) == 32
        assert len({p.split()[0] for p in prompts}) > 4  # they differ from the first word on


@pytest.mark.parametrize("kind", ["wordlevel", "bytelevel"])
def test_synthetic_spread_draws_exact_lengths_in_range(
    tokenizer_dirs: dict[str, str], kind: str
) -> None:
    s = SyntheticPrompts(100, 0.5, tokenizer_name=tokenizer_dirs[kind], seed=3, pool_size=64)
    lengths = [load_counter(tokenizer_dirs[kind])(p) for p, _ in drain(s)]
    assert (s.low, s.high) == (50, 150)
    assert all(50 <= n <= 150 for n in lengths) and len(set(lengths)) > 20
    tiny = SyntheticPrompts(2, 1.0, tokenizer_name=tokenizer_dirs[kind], seed=3, pool_size=16)
    assert (tiny.low, tiny.high) == (1, 4)


def test_synthetic_pool_cycles_without_tokenizing(
    tokenizer_dirs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = SyntheticPrompts(7, tokenizer_name=tokenizer_dirs["wordlevel"], seed=1, pool_size=8)
    first = drain(s)

    def boom(*_a: object) -> None:
        raise AssertionError("tokenized on the hot path")

    monkeypatch.setattr(synthetic.Codec, "encode", boom)
    monkeypatch.setattr(synthetic.Codec, "decode", boom)
    assert drain(s) == first


def test_synthetic_seed(tokenizer_dirs: dict[str, str]) -> None:
    name = tokenizer_dirs["bytelevel"]
    a = drain(SyntheticPrompts(20, tokenizer_name=name, seed=5, pool_size=8))
    assert a == drain(SyntheticPrompts(20, tokenizer_name=name, seed=5, pool_size=8))
    assert a != drain(SyntheticPrompts(20, tokenizer_name=name, seed=6, pool_size=8))


@pytest.mark.parametrize(
    ("args", "kw", "message"),
    [
        ((0,), {}, "synthetic prompt length must be at least 1 token, got 0"),
        ((-5,), {}, "got -5"),
        ((2.5,), {}, "got 2.5"),
        ((True,), {}, "got True"),
        ((10, 1.5), {}, "spread must be between 0 and 1, got 1.5"),
        ((10, -0.1), {}, "spread must be between 0 and 1, got -0.1"),
        ((10,), {"pool_size": 0}, "pool size must be at least 1, got 0"),
    ],
)
def test_synthetic_bad_arguments(
    tokenizer_dirs: dict[str, str], args: tuple, kw: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match="^synthetic prompt") as exc:
        SyntheticPrompts(*args, tokenizer_name=tokenizer_dirs["wordlevel"], **kw)
    assert message in str(exc.value)


def test_synthetic_unloadable_tokenizer(tmp_path: Path) -> None:
    # The same loader, so the same message, as --tokenizer for counting.
    missing = str(tmp_path / "nothing-here")
    with pytest.raises(ConfigError, match=rf"^--tokenizer folder '{missing}' does not exist$"):
        SyntheticPrompts(5, tokenizer_name=missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^--tokenizer folder '.*empty' cannot be loaded: "):
        SyntheticPrompts(5, tokenizer_name=str(tmp_path / "empty"))


def test_synthetic_impossible_tokenizer_fails_loudly(tmp_path: Path) -> None:
    # Every text gains a token ("x" is prepended), so no token survives a round trip.
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "x": 1, "a": 2, "b": 3}, unk_token="[UNK]"))
    tok.normalizer = normalizers.Prepend("x ")
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    name = _save(tok, tmp_path / "prepend")
    with pytest.raises(ConfigError, match="exact-length prompts cannot be built"):
        SyntheticPrompts(3, tokenizer_name=name)
