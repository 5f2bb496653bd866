"""Input files are bounded: line length, record size, nesting, token counts and timestamps are
refused with one ConfigError naming the file and line, before anything is held whole."""

from __future__ import annotations

import json

import pytest

from llm_users.errors import ConfigError
from llm_users.workload.conversation_data import load_conversations
from llm_users.workload.datasets import MAX_TOKENS, load_dataset
from llm_users.workload.files import MAX_LINE_BYTES
from llm_users.workload.trace import MAX_SPAN_MS, read_trace


def _long_line_file(tmp_path, name: str, head: bytes = b"") -> str:
    """A file whose second line is one byte over the cap: a sparse hole, no memory used."""
    path = tmp_path / name
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + MAX_LINE_BYTES + 1)  # zeros, no newline
    return str(path)


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_a_dataset_line_over_the_cap_is_refused(tmp_path, fmt):
    path = _long_line_file(tmp_path, f"d.{fmt}", b'{"prompt": "ok"}\n')
    with pytest.raises(ConfigError, match=r"d\.\w+:2: line longer than 32 MiB"):
        load_dataset(path, fmt=fmt)


def test_a_conversation_line_over_the_cap_is_refused(tmp_path):
    path = _long_line_file(tmp_path, "c.jsonl", b'{"turns": ["hi"]}\n')
    with pytest.raises(ConfigError, match=r"c\.jsonl:2: line longer than 32 MiB"):
        load_conversations(path, fmt="jsonl")


def test_a_sharegpt_record_over_the_cap_is_refused(tmp_path):
    path = tmp_path / "s.json"
    with open(path, "wb") as f:
        f.write(b'[{"conversations": [{"from": "human", "value": "')
        f.write(b"x" * (MAX_LINE_BYTES + (1 << 20)))
    with pytest.raises(ConfigError, match=r"s\.json:1: a record longer than 32 MiB"):
        load_dataset(str(path), fmt="sharegpt")


def test_a_trace_row_over_the_cap_is_refused(tmp_path):
    path = _long_line_file(tmp_path, "t.jsonl", b'{"timestamp": 0, "input_length": 1, '
                           b'"output_length": 1}\n')  # fmt: skip
    with pytest.raises(ConfigError, match=r"t\.jsonl:2: row longer than 32 MiB"):
        read_trace(path)


def test_a_line_just_under_the_cap_is_read(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(b"y" * (MAX_LINE_BYTES - 1) + b"\n")
    assert len(load_dataset(str(path)).next()[0]) == MAX_LINE_BYTES - 1


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("fmt", ["jsonl", "sharegpt"])
def test_deep_nesting_in_a_dataset_is_one_error(tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    path.write_text(f'{{"prompt": {DEEP}}}\n' if fmt == "jsonl" else f"[{DEEP}]")
    with pytest.raises(ConfigError, match=r"not valid JSON"):
        load_dataset(str(path), fmt=fmt)


def _trace(tmp_path, *rows: dict) -> str:
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


ROW = {"timestamp": 0, "input_length": 10, "output_length": 5}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"input_length": 10**11}, r"'input_length' must be a whole number from 1 to 10,000,000"),
        ({"output_length": MAX_TOKENS + 1}, r"'output_length' must be a whole number from 1"),
        ({"input_length": -3}, r"'input_length' must be a whole number from 1"),
        ({"timestamp": 1e300}, r"'timestamp' must be a number of ms from 0 to 1e\+13"),
        ({"timestamp": -1}, r"'timestamp' must be a number of ms from 0"),
        ({"timestamp": MAX_SPAN_MS + 1}, r"t\.jsonl:2: timestamp .* more than 31 days after"),
    ],
)
def test_a_trace_row_out_of_range_is_refused(tmp_path, row, message):
    with pytest.raises(ConfigError, match=message):
        read_trace(_trace(tmp_path, ROW, {**ROW, **row}))


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", DEEP])
def test_a_trace_row_that_is_not_json_is_refused(tmp_path, text):
    path = tmp_path / "t.jsonl"
    path.write_text(f'{{"timestamp": {text}, "input_length": 1, "output_length": 1}}\n')
    with pytest.raises(ConfigError, match=r"t\.jsonl:1: not valid JSON"):
        read_trace(str(path))


def test_a_trace_of_31_days_is_read(tmp_path):
    rows = read_trace(_trace(tmp_path, ROW, {**ROW, "timestamp": MAX_SPAN_MS}))
    assert rows[-1].timestamp_ms == MAX_SPAN_MS


@pytest.mark.parametrize("value", [10**11, 0, -1, 1.5, float("nan")])
def test_a_dataset_max_tokens_out_of_range_is_refused(tmp_path, value):
    path = tmp_path / "d.jsonl"
    path.write_text(f'{{"prompt": "hi", "max_tokens": {json.dumps(value)}}}\n')
    with pytest.raises(ConfigError, match=r"d\.jsonl:1: \"max_tokens\" must be a whole number"):
        load_dataset(str(path))
