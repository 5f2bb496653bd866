"""The SSE parser against a line-by-line reading of the specification, on random streams
cut at random places (seeded): its fast path for the common shape must change nothing."""

from __future__ import annotations

import random

import pytest

from llm_users.wire.sse import SSEEvent, SSEParser

LINES = [
    b'data: {"a":1}',
    b"data: [DONE]",
    b"data:nospace",
    b"data:  two spaces",
    b"data: ",
    b"data",
    b"",
    b"",
    b"",
    b": keep-alive",
    b"event: error",
    b"event: message",
    b"id: 7",
    b"retry: 100",
    b"unknown: x",
    b'data: {"s":"data: inside"}',
]


def reference(stream: bytes) -> list[SSEEvent]:
    """The specification read literally: one line at a time, the stream already whole."""
    text = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    out: list[SSEEvent] = []
    data: list[bytes] = []
    event = b""
    for line in text.split(b"\n")[:-1]:  # the last piece is an unfinished line
        if not line:
            if data:
                out.append(SSEEvent(b"\n".join(data), event))
            data, event = [], b""
            continue
        if line.startswith(b":"):
            continue
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value
    return out


def random_stream(rng: random.Random) -> bytes:
    common = [b'data: {"c":"%d"}\n\n' % i for i in range(5)]
    parts = []
    for _ in range(rng.randint(1, 60)):
        if rng.random() < 0.6:
            parts.append(rng.choice(common))
        else:
            parts.append(rng.choice(LINES) + rng.choice([b"\n", b"\n", b"\r\n", b"\r"]))
    return b"".join(parts)


def cuts(rng: random.Random, stream: bytes) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(0, 8))))
    edges = [0, *points, len(stream)]
    return [stream[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


@pytest.mark.parametrize("seed", range(300))
def test_random_streams_match_the_specification(seed: int) -> None:
    rng = random.Random(seed)
    stream = random_stream(rng)
    expected = reference(stream)
    for pieces in ([stream], cuts(rng, stream), [stream[i : i + 1] for i in range(len(stream))]):
        parser = SSEParser()
        got = [ev for piece in pieces for ev in parser.feed(piece)]
        assert got == expected, (seed, pieces)


def at_event_ends(stream: bytes) -> list[bytes]:
    """One read per event, as a server writing an event at a time is read."""
    pieces = stream.split(b"\n\n")
    return [p + b"\n\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


@pytest.mark.parametrize("seed", range(300))
def test_feed_batch_gives_the_same_events_as_payloads_or_events(seed: int) -> None:
    """The hot loop's form of ``feed``: a read's events as bare payloads when every one is
    the common shape, else as events; never both; the same events either way."""
    rng = random.Random(seed)
    stream = random_stream(rng)
    expected = reference(stream)
    for pieces in ([stream], cuts(rng, stream), at_event_ends(stream)):
        parser = SSEParser()
        got: list[SSEEvent] = []
        for piece in pieces:
            payloads, events = parser.feed_batch(piece)
            assert not (payloads and events)
            got += [SSEEvent(p) for p in payloads] or events
        assert got == expected, (seed, pieces)


def test_the_commonest_read_is_one_payload() -> None:
    parser = SSEParser()
    assert parser.feed_batch(b'data: {"a":1}\n\n') == ([b'{"a":1}'], [])
    assert parser.feed_batch(b"data: x\n\ndata: y") == ([b"x"], [])  # y is held
    assert parser.buffered == 7
    assert parser.feed_batch(b"\n\n") == ([b"y"], [])
    assert parser.feed_batch(b"data: a\n\n\n") == ([b"a"], [])  # a stray blank line: nothing
    assert parser.feed_batch(b"event: e\ndata: z\n\n") == ([], [SSEEvent(b"z", b"e")])
