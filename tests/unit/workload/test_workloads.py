"""Shared-prefix prompts and trace replay: exact token sharing, bad traces, schedules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llm_users.errors import ConfigError
from llm_users.options.settings import Settings
from llm_users.simulator.tokenizer import token_ids
from llm_users.workload.prefix import SharedPrefixPrompts
from llm_users.workload.prompts import PromptsExhausted
from llm_users.workload.trace import TracePrompts, TraceSchedule, read_trace
from tests.helpers import parse_options

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "traces" / "small.jsonl"


def common(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def test_prompts_share_exactly_their_prefix(tokenizer_dir: Path) -> None:
    sp = SharedPrefixPrompts(40, 3, 12, tokenizer_name=str(tokenizer_dir), seed=5, pool_size=60)
    prompts = [token_ids(sp.next()[0]) for _ in range(60)]  # type: ignore[arg-type]
    assert all(len(p) == 52 for p in prompts)
    assert len({sp.prefix_of(i) for i in range(60)}) == 3  # every prefix is drawn
    for i in range(60):
        for j in range(i + 1, 60):
            same = sp.prefix_of(i) == sp.prefix_of(j)
            assert common(prompts[i], prompts[j]) == (40 if same else 0), (i, j)


def test_prefix_as_the_system_prompt(tokenizer_dir: Path) -> None:
    sp = SharedPrefixPrompts(30, 2, 7, tokenizer_name=str(tokenizer_dir), as_system=True,
                             seed=1, pool_size=10)  # fmt: skip
    seen: dict[int, str] = {}
    for i in range(10):
        messages = sp.next()[0]
        assert isinstance(messages, list) and [m["role"] for m in messages] == ["system", "user"]
        assert len(token_ids(messages[0]["content"])) == 30
        assert len(token_ids(messages[1]["content"])) == 7
        assert seen.setdefault(sp.prefix_of(i), messages[0]["content"]) == messages[0]["content"]
    assert len(set(seen.values())) == len(seen)


def test_prefixes_are_the_same_in_every_process_with_one_seed(tokenizer_dir: Path) -> None:
    a = SharedPrefixPrompts(20, 2, 5, tokenizer_name=str(tokenizer_dir), prefix_seed=9, seed=1)
    b = SharedPrefixPrompts(20, 2, 5, tokenizer_name=str(tokenizer_dir), prefix_seed=9, seed=2)
    assert [t for _, t in a.prefixes] == [t for _, t in b.prefixes]


def write_trace(path: Path, rows: list[object]) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ({"input_length": 5, "output_length": 2}, "no 'timestamp'"),
        ({"timestamp": 0, "input_length": -1, "output_length": 2}, "'input_length' must be"),
        ({"timestamp": 0, "input_length": 4, "output_length": -3}, "'output_length' must be"),
        ({"timestamp": 0, "input_length": 4, "output_length": 1, "hash_ids": "x"}, "hash_ids"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_trace_rows_name_the_file_and_line(tmp_path: Path, row: object, error: str) -> None:
    good = {"timestamp": 0, "input_length": 4, "output_length": 1}
    path = write_trace(tmp_path / "t.jsonl", [good, row])
    with pytest.raises(ConfigError, match=rf"t\.jsonl:2: .*{error}"):
        read_trace(path)


def test_trace_rows_must_be_in_time_order(tmp_path: Path) -> None:
    rows = [{"timestamp": t, "input_length": 4, "output_length": 1} for t in (0, 10, 5)]
    with pytest.raises(ConfigError, match=r"t\.jsonl:3: timestamp 5 is before .* 10"):
        read_trace(write_trace(tmp_path / "t.jsonl", rows))
    assert len(read_trace(write_trace(tmp_path / "t.jsonl", rows[:2] * 1), limit=1)) == 1


def expected_shared(a: dict, b: dict, block: int) -> int:
    """Tokens two rows share by their hash ids: whole leading blocks, the last one partial."""
    shared = 0
    for j, (x, y) in enumerate(zip(a["hash_ids"], b["hash_ids"], strict=False)):
        if x != y:
            break
        size_a = min(block, a["input_length"] - j * block)
        size_b = min(block, b["input_length"] - j * block)
        if size_a <= 0 or size_b <= 0:
            break
        shared += min(size_a, size_b)
        if size_a != size_b:
            break
    return shared


def test_trace_prompts_share_exactly_the_tokens_of_shared_hash_ids(tokenizer_dir: Path) -> None:
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    tp = TracePrompts(read_trace(str(FIXTURE)), tokenizer_name=str(tokenizer_dir), block_tokens=16)
    got = [tp.next() for _ in rows]
    with pytest.raises(PromptsExhausted):
        tp.next()
    ids = [token_ids(p) for p, _ in got]  # type: ignore[arg-type]
    assert [len(x) for x in ids] == [r["input_length"] for r in rows]
    assert [m for _, m in got] == [r["output_length"] for r in rows]
    pairs_sharing = 0
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            want = expected_shared(rows[i], rows[j], 16)
            assert common(ids[i], ids[j]) == want, (i, j)
            pairs_sharing += want > 0
    assert pairs_sharing >= 5  # the fixture does share blocks


def test_trace_partition_keeps_global_times(tokenizer_dir: Path) -> None:
    rows = read_trace(str(FIXTURE))
    whole = TracePrompts(rows, tokenizer_name=str(tokenizer_dir), block_tokens=16, speed=2.0)
    parts = [TracePrompts(rows, tokenizer_name=str(tokenizer_dir), block_tokens=16, speed=2.0,
                          partition=(i, 3)) for i in range(3)]  # fmt: skip
    assert sum(len(p) for p in parts) == len(whole) == len(rows)
    assert parts[1]._offsets == whole._offsets[1::3]
    assert whole._offsets[1] == (rows[1].timestamp_ms - rows[0].timestamp_ms) / 2000.0
    assert [parts[2].next() for _ in range(len(parts[2]))] == whole._items[2::3]


def test_trace_schedule_hands_out_due_times_in_order() -> None:
    sched = TraceSchedule([0.0, 0.5, 0.5, 2.0])
    assert [round(sched.take() - sched.start, 9) for _ in range(4)] == [0.0, 0.5, 0.5, 2.0]


def test_trace_options_are_checked(tokenizer_dir: Path) -> None:
    with pytest.raises(ConfigError, match="--trace .* needs --tokenizer"):
        Settings.from_options(parse_options("--trace", str(FIXTURE)), environ={})
    with pytest.raises(ConfigError, match="--trace and --request-rate are exclusive"):
        Settings.from_options(parse_options("--trace", str(FIXTURE), "--tokenizer",
                                            str(tokenizer_dir), "--request-rate", "3"),
                              environ={})  # fmt: skip
    with pytest.raises(ConfigError, match="--prefix-tokens 64 needs --tokenizer"):
        Settings.from_options(parse_options("--prefix-tokens", "64"), environ={})
    with pytest.raises(ConfigError, match="needs --input-tokens"):
        Settings.from_options(
            parse_options("--prefix-tokens", "64", "--tokenizer", str(tokenizer_dir)), environ={}
        )
    assert os.path.isfile(FIXTURE)
