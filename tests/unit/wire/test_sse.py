"""The SSE parser: bytes in any split, complete events out, as the WHATWG rules say."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import sseclient

from llm_users.wire.sse import SSEEvent, SSEParser

from ..streams import CONTENT_TEXTS, USAGE, chat_chunk, event, vllm_chat_objects, vllm_chat_stream


def feed_all(chunks: list[bytes], parser: SSEParser | None = None) -> list[SSEEvent]:
    p = parser or SSEParser()
    out: list[SSEEvent] = []
    for c in chunks:
        out.extend(p.feed(c))
    out.extend(p.close())
    return out


def datas(events: list[SSEEvent]) -> list[bytes]:
    return [e.data for e in events]


# -- a whole realistic stream --------------------------------------------------------------


def test_vllm_stream_in_one_feed_gives_every_event_in_order() -> None:
    events = feed_all([vllm_chat_stream()])
    # role chunk + 4 content + finish + usage + [DONE]
    assert len(events) == 8
    assert events[-1] == SSEEvent(b"[DONE]", b"")
    objs = [json.loads(e.data) for e in events[:-1]]
    assert objs == vllm_chat_objects()
    assert [o["choices"][0]["delta"].get("content") for o in objs[1:5]] == CONTENT_TEXTS
    assert objs[6]["usage"] == USAGE and objs[6]["choices"] == []
    assert all(e.event == b"" for e in events)


def test_events_merged_in_one_feed_are_all_returned_by_that_feed() -> None:
    p = SSEParser()
    two = event({"a": 1}) + event({"b": 2})
    assert p.feed(two) == [SSEEvent(b'{"a":1}'), SSEEvent(b'{"b":2}')]
    assert p.buffered == 0


def test_whole_stream_split_at_every_byte_offset_gives_the_same_events() -> None:
    stream = vllm_chat_stream()
    expected = feed_all([stream])
    for i in range(len(stream) + 1):
        assert feed_all([stream[:i], stream[i:]]) == expected, f"split at {i}"


def test_whole_stream_fed_one_byte_at_a_time() -> None:
    stream = vllm_chat_stream()
    one_by_one = [stream[i : i + 1] for i in range(len(stream))]
    assert feed_all(one_by_one) == feed_all([stream])


# -- one event split across feeds, including inside multi-byte UTF-8 characters ------------

MULTIBYTE_TEXT = "你好, 世界 🎉🚀 ok"
MULTIBYTE_EVENT = event(chat_chunk({"content": MULTIBYTE_TEXT}))


def _content(ev: SSEEvent) -> str:
    return json.loads(ev.data.decode("utf-8"))["choices"][0]["delta"]["content"]


def test_multibyte_event_really_contains_multibyte_characters() -> None:
    # the fixture must put split points inside 3- and 4-byte characters
    assert "你".encode() in MULTIBYTE_EVENT and "🎉".encode() in MULTIBYTE_EVENT
    assert len("🎉".encode()) == 4 and len("你".encode()) == 3


def test_one_event_split_in_two_at_every_offset_decodes_to_the_original_text() -> None:
    raw = MULTIBYTE_EVENT
    for i in range(len(raw) + 1):
        p = SSEParser()
        first = p.feed(raw[:i])
        assert first == [] or i == len(raw), f"event dispatched early at split {i}"
        events = first + p.feed(raw[i:])
        assert len(events) == 1, f"split at {i}"
        assert _content(events[0]) == MULTIBYTE_TEXT


def test_one_event_split_in_three_at_every_pair_of_offsets() -> None:
    raw = MULTIBYTE_EVENT
    n = len(raw)
    for i in range(n + 1):
        for j in range(i, n + 1):
            events = feed_all([raw[:i], raw[i:j], raw[j:]])
            assert len(events) == 1, (i, j)
            assert _content(events[0]) == MULTIBYTE_TEXT, (i, j)


def test_one_event_byte_by_byte_dispatches_only_on_the_final_byte() -> None:
    p = SSEParser()
    raw = MULTIBYTE_EVENT
    for i in range(len(raw) - 1):
        assert p.feed(raw[i : i + 1]) == []
    assert p.buffered > 0
    (ev,) = p.feed(raw[-1:])
    assert _content(ev) == MULTIBYTE_TEXT
    assert p.buffered == 0


def test_split_inside_the_data_field_name() -> None:
    p = SSEParser()
    assert p.feed(b"da") == []
    assert p.feed(b"ta") == []
    assert p.feed(b":") == []
    assert p.feed(b' {"x":1}\n') == []
    assert p.feed(b"\n") == [SSEEvent(b'{"x":1}')]


# -- line endings --------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_ending_gives_the_same_events(eol: bytes) -> None:
    stream = vllm_chat_stream().replace(b"\n", eol)
    expected = feed_all([vllm_chat_stream()])
    assert feed_all([stream]) == expected
    for i in range(len(stream) + 1):
        assert feed_all([stream[:i], stream[i:]]) == expected, f"{eol!r} split at {i}"


def test_crlf_split_between_two_feeds_is_one_line_end_not_two() -> None:
    # If the CR and the LF counted as two line ends, the blank line would dispatch "a"
    # on its own and "b" would become a second event.
    p = SSEParser()
    assert p.feed(b"data: a\r") == []
    assert p.feed(b"\ndata: b\r\n\r\n") == [SSEEvent(b"a\nb")]


def test_crlf_split_with_the_lf_alone_in_the_next_feed() -> None:
    p = SSEParser()
    assert p.feed(b"data: a\r") == []
    assert p.feed(b"\n") == []
    assert p.feed(b"\r") == [SSEEvent(b"a")]
    assert p.feed(b"\n") == []  # second half of that CRLF: not another blank line
    assert p.feed(b"data: b\r\n\r\n") == [SSEEvent(b"b")]


def test_lone_cr_line_endings() -> None:
    assert feed_all([b"data: a\rdata: b\r\rdata: c\r\r"]) == [SSEEvent(b"a\nb"), SSEEvent(b"c")]


def test_two_crs_split_between_feeds_are_two_line_ends() -> None:
    p = SSEParser()
    assert p.feed(b"data: a\r") == []
    assert p.feed(b"\r") == [SSEEvent(b"a")]


def test_mixed_line_endings_in_one_stream() -> None:
    assert feed_all([b"data: a\r\ndata: b\ndata: c\r\r\n"]) == [SSEEvent(b"a\nb\nc")]


# -- fields --------------------------------------------------------------------------------


def test_data_without_space_after_the_colon() -> None:
    assert feed_all([b'data:{"a":1}\n\n']) == [SSEEvent(b'{"a":1}')]


def test_only_one_leading_space_is_dropped() -> None:
    assert feed_all([b"data:  two spaces\n\n"]) == [SSEEvent(b" two spaces")]


def test_multi_line_data_is_joined_by_lf() -> None:
    assert feed_all([b"data: line one\ndata: line two\ndata:\ndata: four\n\n"]) == [
        SSEEvent(b"line one\nline two\n\nfour")
    ]


def test_bare_data_field_name_is_an_empty_data_line() -> None:
    assert feed_all([b"data\ndata: x\n\n"]) == [SSEEvent(b"\nx")]


def test_empty_data_line_alone_dispatches_an_empty_event() -> None:
    # WHATWG: the data buffer is "\n" (not empty), so an event with data "" is dispatched
    assert feed_all([b"data:\n\n"]) == [SSEEvent(b"")]


def test_comment_lines_and_keep_alives_are_not_events() -> None:
    p = SSEParser()
    stream = b": keep-alive\n\n:ping\n\n: comment inside\ndata: x\n: another\n\n"
    assert feed_all([stream], p) == [SSEEvent(b"x")]
    assert p.comments == 4


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert feed_all([b"\n\n\n\r\n\r\r"]) == []


def test_event_id_and_retry_fields() -> None:
    p = SSEParser()
    stream = b"event: error\nid: 42\nretry: 3000\ndata: {}\n\ndata: next\n\n"
    events = feed_all([stream], p)
    assert events == [SSEEvent(b"{}", b"error"), SSEEvent(b"next", b"")]  # type resets
    assert p.last_id == b"42"
    assert p.retry == 3000


def test_event_type_resets_on_a_blank_line_even_without_data() -> None:
    assert feed_all([b"event: ping\n\ndata: x\n\n"]) == [SSEEvent(b"x", b"")]


def test_retry_that_is_not_all_digits_is_ignored() -> None:
    p = SSEParser()
    feed_all([b"retry: 10s\ndata: a\n\nretry: 7\ndata: b\n\nretry: -1\ndata: c\n\n"], p)
    assert p.retry == 7


def test_id_containing_nul_is_ignored() -> None:
    p = SSEParser()
    feed_all([b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"], p)
    assert p.last_id == b"1"


def test_unknown_fields_are_ignored() -> None:
    assert feed_all([b"foo: bar\nDATA: no\n data: no\ndata: yes\n\n"]) == [SSEEvent(b"yes")]


def test_done_sentinel_is_an_ordinary_event() -> None:
    assert feed_all([b"data: [DONE]\n\n"]) == [SSEEvent(b"[DONE]", b"")]


def test_unterminated_final_event_is_discarded_at_close() -> None:
    p = SSEParser()
    assert p.feed(b"data: complete\n\ndata: cut off") == [SSEEvent(b"complete")]
    assert p.buffered == len(b"data: cut off")
    assert p.close() == []
    assert p.buffered == 0


def test_buffered_counts_accumulated_data_lines() -> None:
    p = SSEParser()
    p.feed(b"data: abc\ndata: de\n")
    assert p.buffered == 5  # "abc" + "de", no line left unfinished
    p.feed(b"\n")
    assert p.buffered == 0


def test_empty_feed_changes_nothing() -> None:
    p = SSEParser()
    assert p.feed(b"") == []
    assert p.feed(b"data: a\r") == []
    assert p.feed(b"") == []  # the pending CR survives an empty read
    assert p.feed(b"\n\r\n") == [SSEEvent(b"a")]


# -- differential: the reference parser sseclient-py ---------------------------------------


def _random_stream(rng: random.Random) -> bytes:
    """A stream in one line-ending style, always ending with a blank line (sseclient-py
    dispatches an unterminated final event, the specification does not)."""
    eol = rng.choice([b"\n", b"\r\n", b"\r"])
    texts = ["Hello", "你好世界", "emoji 🎉🚀", "", " lead", "a:b:c", "[DONE]", "é ü ß"]
    lines: list[bytes] = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        if kind < 0.15:  # a keep-alive block
            lines += [b": ping", b""]
            continue
        if rng.random() < 0.3:
            lines.append(b"event: " + rng.choice(["error", "message", "delta", "é"]).encode())
        if rng.random() < 0.2:
            lines.append(b"id: " + str(rng.randint(0, 99)).encode())
        if rng.random() < 0.1:
            lines.append(b"retry: " + str(rng.randint(0, 5000)).encode())
        if rng.random() < 0.2:
            lines.append(b": comment " + rng.choice(texts).encode())
        for _ in range(rng.randint(1, 3)):
            value = rng.choice(texts)
            if rng.random() < 0.5:
                value = json.dumps({"choices": [{"delta": {"content": value}}]}, ensure_ascii=False)
            sep = rng.choice([b": ", b":"])
            lines.append(b"data" + sep + value.encode())
        if rng.random() < 0.1:
            lines.append(b"unknown: field")
        lines.append(b"")
    return eol.join(lines) + eol


def _random_split(rng: random.Random, raw: bytes) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(raw)), k=min(len(raw) - 1, rng.randint(0, 12))))
    bounds = [0, *cuts, len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


def _ours(chunks: list[bytes]) -> list[tuple[str, str]]:
    return [
        (e.data.decode("utf-8"), e.event.decode("utf-8") or "message") for e in feed_all(chunks)
    ]


def _reference(chunks: list[bytes]) -> list[tuple[str, str]]:
    return [(e.data, e.event) for e in sseclient.SSEClient(iter(chunks)).events()]


def test_reference_parser_agrees_on_the_vllm_stream() -> None:
    chunks = [vllm_chat_stream()]
    assert _ours(chunks) == _reference(chunks)
    assert len(_reference(chunks)) == 8


@pytest.mark.parametrize("seed", range(8))
def test_random_streams_and_splits_match_the_reference_parser(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        raw = _random_stream(rng)
        whole = _reference([raw])
        for _ in range(5):
            chunks = _random_split(rng, raw)
            assert _ours(chunks) == _reference(chunks) == whole, (raw, chunks)


# -- bounded, linear work on an endless line ------------------------------------------------


def test_an_unfinished_line_is_kept_as_its_pieces_never_recopied() -> None:
    """20 MB of one line in 4 KiB reads: every piece is kept as received (the same object,
    no copy), so the work is linear in the bytes; ``buffered`` counts them all; the line
    is joined once, when it ends."""
    p = SSEParser()
    first = b"data: " + b"x" * 4090
    pieces = [first] + [bytes([65 + i % 26]) * 4096 for i in range(1, 20 * 256)]
    for piece in pieces:
        assert p.feed(piece) == []
    tail = p._tail  # noqa: SLF001 (the point of the test is how the line is held)
    assert len(tail) == len(pieces) and all(a is b for a, b in zip(tail, pieces, strict=True))
    assert p.buffered == p.held == 20 * 256 * 4096
    (ev,) = p.feed(b"\n\n")
    assert ev.data == b"".join(pieces)[6:] and p.buffered == 0


def test_held_counts_empty_data_lines_that_add_no_bytes() -> None:
    p = SSEParser()
    assert p.feed(b"data:\n" * 1000) == []
    assert p.buffered == 0 and p.held == 1000
    (ev,) = p.feed(b"\n")
    assert ev.data == b"\n" * 999 and p.held == 0
