"""vLLM's per-request timing (the response's top-level ``metrics`` object, vLLM PR #46768,
sent with ``--enable-per-request-metrics`` and ``include_metrics``) reaches the records."""

from __future__ import annotations

import orjson

from llm_users.measure.per_request import result_of
from llm_users.report.writers import RecordsWriter
from llm_users.wire.endpoints import CHAT, COMPLETIONS, Chunk
from llm_users.wire.server_timing import server_timing

from ..streams import USAGE, event, usage_chunk, vllm_chat_objects
from .test_client import chat_body, chunked, head, make

TIMING = {"time_to_first_token_ms": 85.2, "generation_time_ms": 1240.5, "queue_time_ms": 12.3,
          "mean_itl_ms": 9.1, "tokens_per_second": 103.2}  # fmt: skip


def test_only_the_numbers_of_the_metrics_object_are_kept() -> None:
    assert server_timing({"metrics": TIMING}) == TIMING
    odd = {"metrics": {"queue_time_ms": 3, "x": "text", "y": None, "z": True, "w": float("nan")}}
    assert server_timing(odd) == {"queue_time_ms": 3.0}
    assert server_timing({}) is None and server_timing({"metrics": [1]}) is None


def test_chunks_and_whole_responses_carry_it() -> None:
    assert CHAT.chunk({**usage_chunk(), "metrics": TIMING}) == Chunk(
        None, False, None, USAGE, server_timing=TIMING
    )
    assert CHAT.chunk({"choices": [], "metrics": TIMING}).server_timing == TIMING
    assert CHAT.chunk(usage_chunk()).server_timing is None
    assert COMPLETIONS.chunk({"choices": [{"text": "a"}], "metrics": TIMING}).server_timing == (
        TIMING
    )
    full = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": USAGE, "metrics": TIMING}  # fmt: skip
    assert CHAT.on_full(full).server_timing == TIMING


def test_a_streamed_metrics_object_reaches_the_record_and_the_records_file(tmp_path) -> None:
    objs = vllm_chat_objects()
    objs[-1] = {**objs[-1], "metrics": TIMING}  # on the final (usage) chunk
    stream = b"".join(event(o) for o in objs) + b"data: [DONE]\n\n"
    client, _ = make([head(), *chunked(stream)])
    rec = client.request(chat_body())
    assert rec.ok, rec.message
    assert rec.server_timing == TIMING
    path = tmp_path / "records.jsonl"
    writer = RecordsWriter(str(path))
    writer.write(result_of(rec))
    client, _ = make([head(), *chunked(b"".join(event(o) for o in vllm_chat_objects()))])
    writer.write(result_of(client.request(chat_body())))
    writer.close()
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [r["server_timing"] for r in rows] == [TIMING, None]
