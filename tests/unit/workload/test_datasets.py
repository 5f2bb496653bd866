"""Prompt datasets (text, JSONL, ShareGPT)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from llm_users.errors import ConfigError
from llm_users.workload import datasets, files
from llm_users.workload.datasets import DatasetPrompts, load_dataset
from llm_users.workload.tokenizer import load_counter

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "datasets"


def drain(source: DatasetPrompts, n: int | None = None) -> list:
    return [source.next() for _ in range(len(source) if n is None else n)]


def write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def jsonl(path: Path, *records: object) -> str:
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


def error(path: str, **kw: object) -> str:
    with pytest.raises(ConfigError) as exc:
        load_dataset(path, **kw)  # type: ignore[arg-type]
    assert "\n" not in str(exc.value)
    return str(exc.value)


# -- formats --------------------------------------------------------------------------------------


def test_text_one_prompt_per_line_blank_lines_skipped() -> None:
    d = load_dataset(str(FIXTURES / "prompts.txt"))
    assert drain(d) == [
        ("What is the capital of France?", None),
        ("Explain TCP slow start in two sentences.", None),  # \r\n stripped
        ("Write a haiku about load tests.", None),
    ]
    assert d.total == 3 and d.skipped == 0


def test_jsonl_prompts_messages_and_max_tokens() -> None:
    items = drain(load_dataset(str(FIXTURES / "prompts.jsonl")))
    assert items[0] == ("What is the capital of France?", None)
    assert items[1] == ("Name three prime numbers.", 16)
    assert items[2] == (
        [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Why is the sky blue?"},
        ],
        64,
    )
    assert items[3][0][0]["content"] == [{"type": "text", "text": "Describe a cat."}]
    assert len(items) == 4


def test_sharegpt_first_human_turn_and_skipped_records() -> None:
    d = load_dataset(str(FIXTURES / "sharegpt.json"))
    assert drain(d) == [
        ("How do I boil an egg?", None),
        ("Say hi.", None),  # the system turn before it is not the prompt
        ("Count to three.", None),  # "conversation" + role/content/user/assistant variant
        ("No answer recorded.", None),
    ]
    assert d.skipped == 1  # no human turn at all


def test_sharegpt_output_len_in_words_or_by_counter() -> None:
    path = str(FIXTURES / "sharegpt.json")
    d = load_dataset(path, use_output_len=True)
    assert drain(d) == [("How do I boil an egg?", 8), ("Say hi.", 1), ("Count to three.", 3)]
    assert d.skipped == 2  # the empty record and the one without an answer
    by_chars = load_dataset(path, use_output_len=True, counter=len)
    assert by_chars.next() == (
        "How do I boil an egg?",
        len("Put it in boiling water for 7 minutes."),
    )


def test_sharegpt_output_len_with_a_tokenizer(tokenizer_dir: Path, tmp_path: Path) -> None:
    answer = "the model token stream 🚀 ."
    path = write(
        tmp_path / "s.json",
        json.dumps(
            [{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": answer}]}]
        ),
    )
    d = load_dataset(path, use_output_len=True, counter=load_counter(str(tokenizer_dir)))
    assert d.next() == ("q", 6)


def test_sharegpt_records_in_jsonl(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "s.jsonl",
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "a b"}]},
        {"prompt": "plain"},
    )
    assert drain(load_dataset(path, use_output_len=True)) == [("hi", 2), ("plain", None)]


def test_utf8_bom_and_unicode(tmp_path: Path) -> None:
    path = write(tmp_path / "p.txt", "\ufeff你好，世界\ncafé 🚀\n".encode())
    assert drain(load_dataset(path)) == [("你好，世界", None), ("café 🚀", None)]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("data", '[{"conversations": [{"from": "human", "value": "x"}]}]', "sharegpt"),
        ("data", '{"prompt": "x"}\n', "jsonl"),
        ("data.json", '{"prompt": "x"}\n', "jsonl"),  # JSONL saved as .json: common
        ("data.json", '[\n  {"conversations": [{"from": "human", "value": "x"}]}\n]', "sharegpt"),
        ("data.txt", '{"prompt": "x"}\n', "text"),  # .txt is always text
        ("notes", "[INST] x [/INST]\n", "text"),
        ("notes", "{not json} x\n", "text"),
        ("data.jsonl", "  \n\n" + '{"prompt": "x"}\n', "jsonl"),
    ],
)
def test_format_detection(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = write(tmp_path / name, content)
    assert datasets.detect_format(path) == expected
    prompt = load_dataset(path).next()[0]
    assert prompt == ("x" if expected != "text" else content.strip())


def test_format_override(tmp_path: Path) -> None:
    path = write(tmp_path / "p.txt", '{"prompt": "x"}\n')
    assert load_dataset(path, fmt="jsonl").next() == ("x", None)
    assert load_dataset(path).next() == ('{"prompt": "x"}', None)
    assert "format 'xml'" in error(path, fmt="xml")


# -- bad files ------------------------------------------------------------------------------------


def test_missing_unreadable_and_empty(tmp_path: Path) -> None:
    assert error(str(tmp_path / "nope.jsonl")) == f"{tmp_path / 'nope.jsonl'}: no such dataset file"
    assert "cannot read the dataset file" in error(str(tmp_path))
    for name, content in [("e.txt", ""), ("e.jsonl", "\n  \n"), ("e.json", "[]")]:
        path = write(tmp_path / name, content)
        assert error(path) == f"{path}: empty: no prompts"
    path = write(tmp_path / "s.json", '[{"conversations": []}]')
    assert error(path) == f"{path}: no prompts: all 1 records lack a non-empty first human turn"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "x"', "not valid JSON (Expecting ',' delimiter, column 15)"),
        ("prompt: x", "not valid JSON (Expecting value, column 1)"),
        (
            '{"text": "x"}',
            'a line needs "prompt" (a string) or "messages" (a list of {role, content})',
        ),
        ('{"prompt": 5}', 'a line needs "prompt"'),
        ('["x"]', 'a line needs "prompt"'),
        ('{"prompt": "  "}', '"prompt" is empty'),
        ('{"prompt": "x", "messages": []}', 'both "prompt" and "messages"'),
        ('{"messages": "x"}', "\"messages\" must be a non-empty list of {role, content}, got 'x'"),
        ('{"messages": []}', '"messages" must be a non-empty list'),
        ('{"messages": [{"role": "user"}]}', 'messages[0] needs "role" (a string) and "content"'),
        ('{"messages": [{"role": 1, "content": "x"}]}', "messages[0] needs"),
        (
            '{"prompt": "x", "max_tokens": "10"}',
            "\"max_tokens\" must be a whole number from 1 to 10,000,000, got '10'",
        ),
        (
            '{"prompt": "x", "max_tokens": 0}',
            '"max_tokens" must be a whole number from 1 to 10,000,000, got 0',
        ),
        (
            '{"prompt": "x", "max_tokens": true}',
            '"max_tokens" must be a whole number from 1 to 10,000,000, got True',
        ),
        (
            '{"prompt": "x", "max_tokens": 1.5}',
            '"max_tokens" must be a whole number from 1 to 10,000,000',
        ),
        ('{"conversations": "x"}', 'a record needs "conversations" (a list of {from, value})'),
        ('{"conversations": [{"from": "human"}]}', 'conversations[0] needs "from" and "value"'),
        ("[" * 100_000, "not valid JSON (RecursionError)"),
    ],
)
def test_bad_jsonl_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "d.jsonl", '{"prompt": "ok"}\n\n' + line + '\n{"prompt": "ok"}\n')
    got = error(path)
    assert got.startswith(f"{path}:3: ")  # blank lines count: the number is the editor's line
    assert message in got


def test_not_utf8_reports_line_and_byte_offset(tmp_path: Path) -> None:
    path = write(tmp_path / "p.txt", b"ok\nfine \xff bad\n")
    assert error(path) == f"{path}:2: not UTF-8 (byte b'\\xff' at byte offset 8)"
    path = write(tmp_path / "p.jsonl", b'\xef\xbb\xbf{"prompt": "\xc3\xa9"}\n{"prompt": "\xe9"}\n')
    assert error(path) == f"{path}:2: not UTF-8 (byte b'\\xe9' at byte offset 32)"


@pytest.mark.parametrize("chunk", [3, 1 << 20])
def test_sharegpt_not_utf8_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(files, "_CHUNK", chunk)
    body = b'[{"conversations": [{"from": "human", "value": "\xc3\xa9"}]},\n{"x": "\xe9"}]'
    path, offset = write(tmp_path / "s.json", body), body.index(b"\xe9")
    assert error(path) == f"{path}:2: not UTF-8 (byte b'\\xe9' at byte offset {offset})"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "x"}', "1: not a JSON list (ShareGPT is [{...}, ...])"),
        ("[\n5\n]", '2: record 0: a record needs "conversations" (a list of {from, value})'),
        (
            '[\n{"conversations": []},\n{"conversations": [7]}]',
            "3: record 1: conversations[0] is not an object: 7",
        ),
        ('[\n{"conversations": []},\n{"conversations": [}]', "3: not valid JSON (Expecting value)"),
        (
            '[{"conversations": []}\n{"conversations": []}]',
            "2: not valid JSON (expected ',' or ']' after record 0)",
        ),
        ('[{"conversations": []},\n', "2: the JSON list is not closed"),
        ('[{"conversations": []}]\n]', "2: not valid JSON (data after the list)"),
    ],
)
@pytest.mark.parametrize("chunk", [4, 1 << 20])
def test_bad_sharegpt_names_line_and_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str, chunk: int
) -> None:
    monkeypatch.setattr(files, "_CHUNK", chunk)
    path = write(tmp_path / "s.json", content)
    assert error(path, fmt="sharegpt") == f"{path}:{message}"


def test_sharegpt_is_streamed_in_small_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records: list[dict] = [
        {
            "id": i,
            "conversations": [
                {"from": "human", "value": f"q{i} é 🚀 " * (i % 7 + 1)},
                {"from": "gpt", "value": "a " * i},
            ],
        }
        for i in range(300)
    ]
    path = write(tmp_path / "s.json", json.dumps(records, indent=2, ensure_ascii=False))
    largest = max(len(json.dumps(r, indent=2, ensure_ascii=False)) for r in records)
    whole = drain(load_dataset(path, use_output_len=True))
    assert whole == [(f"q{i} é 🚀 " * (i % 7 + 1), i) for i in range(1, 300)]  # 0: no answer
    monkeypatch.setattr(files, "_CHUNK", 7)  # splits strings, numbers and UTF-8 sequences
    seen: list[int] = []
    fill = datasets.JsonList._fill

    def spy(self: datasets.JsonList) -> bool:
        seen.append(len(self.buf) - self.pos)
        return fill(self)

    monkeypatch.setattr(datasets.JsonList, "_fill", spy)
    assert drain(load_dataset(path, use_output_len=True)) == whole
    assert max(seen) < largest + 64  # never more than about one record in memory


def test_100k_lines_load_quickly(tmp_path: Path) -> None:
    lines = "".join(
        f'{{"prompt": "question {i}", "max_tokens": {i % 50 + 1}}}\n' for i in range(100_000)
    )
    path = write(tmp_path / "big.jsonl", lines)
    start = time.perf_counter()
    d = load_dataset(path)
    elapsed = time.perf_counter() - start
    assert len(d) == d.total == 100_000
    assert d.next() == ("question 0", 1)
    assert drain(d, 99_999)[-1] == ("question 99999", 50)
    assert elapsed < 10  # ~0.4 s here: this only catches accidental quadratic behaviour


# -- partition and order --------------------------------------------------------------------------


@pytest.fixture
def ten(tmp_path: Path) -> str:
    return write(tmp_path / "ten.txt", "".join(f"p{i}\n" for i in range(10)))


def test_sequential_cycles(ten: str) -> None:
    d = load_dataset(ten)
    assert [p for p, _ in drain(d, 12)] == [f"p{i}" for i in range(10)] + ["p0", "p1"]


def test_partitions_are_disjoint_and_cover_the_file(ten: str) -> None:
    shares = [[p for p, _ in drain(load_dataset(ten, partition=(i, 3)))] for i in range(3)]
    assert shares == [["p0", "p3", "p6", "p9"], ["p1", "p4", "p7"], ["p2", "p5", "p8"]]
    d = load_dataset(ten, partition=(1, 3))
    assert (len(d), d.total) == (3, 10)
    assert [p for p, _ in drain(d, 4)] == ["p1", "p4", "p7", "p1"]


def test_partition_counts_usable_prompts_only() -> None:
    path = str(FIXTURES / "sharegpt.json")  # record 1 is skipped: it does not shift the shares
    share = [p for p, _ in drain(load_dataset(path, partition=(1, 2)))]
    assert share == ["Say hi.", "No answer recorded."]


def test_constructor_partition_matches_load(ten: str) -> None:
    items = drain(load_dataset(ten))
    for i in range(4):
        loaded = load_dataset(ten, partition=(i, 4))
        assert drain(DatasetPrompts(items, partition=(i, 4))) == drain(loaded)


def test_shuffle_is_a_seeded_permutation_repeated_each_pass(ten: str) -> None:
    a = [p for p, _ in drain(load_dataset(ten, order="shuffle", seed=1), 20)]
    assert sorted(a[:10]) == sorted(f"p{i}" for i in range(10)) and a[10:] == a[:10]
    assert a[:10] != [f"p{i}" for i in range(10)]
    assert a == [p for p, _ in drain(load_dataset(ten, order="shuffle", seed=1), 20)]
    assert a != [p for p, _ in drain(load_dataset(ten, order="shuffle", seed=2), 20)]
    share = [p for p, _ in drain(load_dataset(ten, order="shuffle", seed=1, partition=(0, 2)))]
    assert sorted(share) == ["p0", "p2", "p4", "p6", "p8"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"partition": (3, 3)}, "partition (3, 3): needs (index, count), 0 <= index < count"),
        ({"partition": (0, 0)}, "partition (0, 0)"),
        ({"partition": (-1, 2)}, "partition (-1, 2)"),
        ({"partition": (10, 11)}, "10 prompt(s) leave none for partition 10 of 11"),
        ({"order": "random"}, "dataset order 'random' is not one of sequential, shuffle"),
    ],
)
def test_bad_partition_or_order(ten: str, kw: dict, message: str) -> None:
    assert message in error(ten, **kw)
