"""Every stream shape the simulator can send, measured by in-process Locust runs.

Each figure is checked against the simulator's own ground truth, request by request: the
client's record is matched to the server's record by the generated text (the simulator's
text of a request is a known function of its id), so the text itself must have been
reassembled exactly. The client and the simulator stamp times with the same clock
(``perf_counter`` is the system-wide monotonic clock), so the client's first token can be
compared with the moment the server wrote it.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

import llm_users.wire.client
from llm_users.measure.per_request import RequestResult
from llm_users.record import RequestRecord
from llm_users.simulator import SimConfig, SimulatorProcess
from llm_users.simulator.payloads import token_texts
from llm_users.wire.sse import SSEParser
from tests.helpers import mean, run_in_process

# How late the client may see what the server wrote (same machine, same clock): each
# request's TTFT and token times are compared with the server's. Which event is the first
# token, and every other, is already exact (same event counts, never earlier than the
# server wrote it); lateness is measurement noise: a few ms at the median, while one
# sample may wait for a busy 2-core machine (other test runs) to schedule the client or
# the server. Both bounds grow by the client's own measured loop lag, the timing
# uncertainty the summary reports.
LATE_MAX_MS = 50.0  # any one sample
LATE_MEDIAN_MS = 3.0  # the median of a test's samples
EARLY_MS = 0.05  # float rounding: the client never sees a byte before it is written
DEFAULTS = SimConfig().to_dict()

Pair = tuple[RequestRecord, RequestResult]


def run(
    sim: SimulatorProcess,
    *args: str,
    tokenizer: Any = None,
    users: int = 2,
    requests: int = 2,
) -> tuple[dict[str, Any], list[tuple[RequestRecord, RequestResult, dict[str, Any]]]]:
    """A streaming run; returns the summary and (client record, figures, server record)."""
    pairs: list[Pair] = []
    extra = ["--tokenizer", str(tokenizer)] if tokenizer is not None else []
    plugin = run_in_process(
        sim.url,
        "--stream",
        "--requests-per-user",
        str(requests),
        "--max-tokens",
        "1000",
        *extra,
        *args,
        users=users,
        collect=pairs,
    )
    assert not plugin.env.runner.exceptions, "a user raised"
    summary = plugin.last_summary
    assert summary is not None
    assert len(pairs) == users * requests
    return summary, match(pairs, server_records(sim), sim.config()["vocab"])


def server_records(sim: SimulatorProcess) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while sim.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return sim.records()


def match(
    pairs: list[Pair], records: list[dict[str, Any]], vocab: str
) -> list[tuple[RequestRecord, RequestResult, dict[str, Any]]]:
    """Pair each client request with the server's record of it, by the generated text."""
    assert len(records) == len(pairs), "the server saw a different number of requests"
    by_text: dict[str, dict[str, Any]] = {}
    for srv in records:
        by_text["".join(token_texts(vocab, srv["id"], srv["completion_tokens"]))] = srv
    assert len(by_text) == len(records), "two requests with the same text: cannot match"
    out = []
    for rec, res in pairs:
        text = "".join(rec.texts)
        assert text in by_text, f"text not reassembled exactly: {text!r}"
        out.append((rec, res, by_text.pop(text)))
    return out


def check_request(
    rec: RequestRecord, res: RequestResult, srv: dict[str, Any], late: list[float] | None
) -> None:
    """Token events, follow tokens and, given ``late``, times against the server's.

    ``late`` collects how much later than the server each time was seen (ms); see
    :func:`check_late`. Pass None where the stream is slowed down on purpose (split writes).
    """
    assert res.ok, res.message
    assert srv["completed"] and srv["fault"] is None
    n_events = len(srv["token_times"])
    assert res.token_events == len(rec.token_times) == n_events
    assert len(res.itl_ms) == n_events - 1  # one gap per token event
    # Follow tokens: every generated token after the first event's (tokenizer: 1 word = 1).
    assert res.follow_tokens == srv["completion_tokens"] - srv["tokens_per_event"][0]
    if res.follow_tokens:
        assert res.tpot_ms == pytest.approx(res.follow_latency_ms / res.follow_tokens)
    else:  # a single token event: nothing follows, TPOT does not exist
        assert res.tpot_ms is None and n_events == 1
    assert res.e2e_ms is not None and res.e2e_ms >= res.ttft_ms
    if late is None:
        return
    server_ttft = (srv["first_token_at"] - srv["received_at"]) * 1000
    late.append(res.ttft_ms - server_ttft)
    late.extend((c - s) * 1000 for c, s in zip(rec.token_times, srv["token_times"], strict=True))
    # Events the server wrote at once arrive in one read and share its timestamp (a busy
    # client may also read two writes at once, never one write in two reads).
    for i in range(1, n_events):
        if srv["token_times"][i] == srv["token_times"][i - 1]:
            assert rec.token_times[i] == rec.token_times[i - 1]
    # The first token read with later ones is flagged (at least the events written with it),
    # and its bound holds: the server wrote it after the read before (loopback: same clock).
    written_with_first = srv["token_times"].count(srv["token_times"][0]) - 1
    assert res.merged_first >= written_with_first
    if res.merged_first:
        assert res.first_token_bound_ms is not None and res.first_token_bound_ms >= 0
        earliest = rec.token_times[0] - res.first_token_bound_ms / 1000
        assert srv["token_times"][0] >= earliest - EARLY_MS / 1000
    else:
        assert res.first_token_bound_ms is None


def check_late(late: list[float], s: dict[str, Any]) -> None:
    """Never before the server wrote it; late by no more than a few ms (plus loop lag)."""
    lag = (s.get("client_loop_lag_ms") or {}).get("max") or 0.0
    assert late
    assert min(late) >= -EARLY_MS, late
    assert max(late) < LATE_MAX_MS + lag, (late, lag)
    assert statistics.median(late) < LATE_MEDIAN_MS + lag, (late, lag)


def check_run(s: dict[str, Any], rows: list[Any], timing: bool = True) -> list[float]:
    """Every request against the server, then the summary against the requests.

    Returns how late the client saw each server time (ms), already checked.
    """
    late: list[float] | None = [] if timing else None
    for rec, res, srv in rows:
        check_request(rec, res, srv, late)
    if late is not None:
        check_late(late, s)
    # The summary's figures are exactly the per-request ones.
    n = len(rows)
    assert s["requests"] == n and s["failures"] == 0 and s["failures_by_kind"] == {}
    assert s["ttft_ms"]["count"] == s["e2e_ms"]["count"] == n
    assert s["tpot_ms"]["count"] == sum(1 for _, r, _ in rows if r.tpot_ms is not None)
    assert s["itl_ms"]["count"] == sum(len(srv["token_times"]) - 1 for _, _, srv in rows)
    assert s["average_follow_tokens"] == pytest.approx(mean([r.follow_tokens for _, r, _ in rows]))
    ttft = mean([r.ttft_ms for _, r, _ in rows])
    assert s["average_first_token_latency_ms"] == pytest.approx(ttft)
    merged = s["merged_first_token"]
    assert merged["requests"] == sum(1 for _, r, _ in rows if r.merged_first) and merged["of"] == n
    return late or []


@pytest.fixture
def sim_with(shared_sim):
    """``sim_with(**knobs)``: the module's simulator, reconfigured from the defaults, fresh
    records and request ids; fast unless told otherwise."""

    def configure(**knobs: Any) -> SimulatorProcess:
        fast = {"ttft_ms": 20, "itl_ms": 4, "output_tokens": 8}
        shared_sim.configure(**{**DEFAULTS, **fast, **knobs})
        shared_sim.reset()
        return shared_sim

    return configure


# --- events merged into one read ------------------------------------------------------


@pytest.mark.parametrize(
    "knobs",
    [{"merge_events": 3}, {"merge_events": 4, "tokens_per_chunk": 2}, {"burst": True}],
    ids=["merge3", "merge4x2tokens", "burst"],
)
def test_events_merged_in_one_read_are_each_counted(sim_with, tokenizer_dir, knobs):
    sim = sim_with(output_tokens=12, **knobs)
    s, rows = run(sim, tokenizer=tokenizer_dir)
    check_run(s, rows)  # includes: events of one write share one read's timestamp
    for _, res, srv in rows:
        assert res.follow_tokens == 12 - srv["tokens_per_event"][0]
        if knobs.get("burst"):  # every token in one write: one read, zero gaps
            assert set(res.itl_ms) == {0.0}
        assert res.merged_first >= (knobs.get("merge_events") or len(srv["token_times"])) - 1
    assert s["merged_first_token"]["requests"] == len(rows)  # every first token was merged
    assert s["follow_tokens_source"] == {"tokenizer": 4}


# --- events split across reads ----------------------------------------------------------


class RecordingParser(SSEParser):
    """The client's SSE parser, keeping every chunk the client fed it."""

    feeds: list[list[bytes]] = []

    def __init__(self) -> None:
        super().__init__()
        self.mine: list[bytes] = []
        RecordingParser.feeds.append(self.mine)

    def feed_batch(self, chunk: bytes) -> tuple[list[bytes], list[Any]]:
        self.mine.append(chunk)  # (feed too comes here)
        return super().feed_batch(chunk)


def split_points(feeds: list[list[bytes]]) -> tuple[int, int, int]:
    """How many reads ended inside a multi-byte character, inside 'data: ', inside a CRLF."""
    in_char = in_prefix = in_crlf = 0
    for chunks in feeds:
        body = b""
        for chunk, nxt in zip(chunks, chunks[1:], strict=False):
            body += chunk
            if nxt and 0x80 <= nxt[0] < 0xC0:  # the next read starts with a continuation byte
                in_char += 1
            line = body.replace(b"\r", b"\n").rsplit(b"\n", 1)[-1]
            if 0 < len(line) < 6 and b"data: ".startswith(line):
                in_prefix += 1
            if chunk.endswith(b"\r") and nxt.startswith(b"\n"):
                in_crlf += 1
    return in_char, in_prefix, in_crlf


@pytest.mark.parametrize(
    ("split", "vocab", "knobs"),
    [
        (1, "zh", {"output_tokens": 3}),
        (2, "emoji", {}),
        (3, "emoji", {"tokens_per_chunk": 3}),
        (4, "zh", {"tokens_per_chunk": 5}),
        (5, "zh", {}),
        (6, "emoji", {}),
        # 133 tokens: the whole mixed vocabulary (1 to 4-byte characters, JSON escapes).
        (7, "mixed", {"output_tokens": 133, "tokens_per_chunk": 7}),
        (2, "emoji", {"line_ending": "crlf", "fields": True, "comments": True}),
        (3, "zh", {"line_ending": "cr", "no_space": True}),
        (4, "zh", {"reasoning_tokens": 3, "tokens_per_chunk": 2}),
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else str(v),
)
def test_events_split_across_reads_are_reassembled(
    sim_with, tokenizer_dir, monkeypatch, split, vocab, knobs
):
    RecordingParser.feeds = []
    monkeypatch.setattr(llm_users.wire.client, "SSEParser", RecordingParser)
    knobs = dict(knobs)
    n = knobs.pop("output_tokens", 5)
    # Each piece is a write of its own, about 1 ms apart (the event loop's resolution).
    sim = sim_with(
        vocab=vocab,
        split_bytes=split,
        split_delay_ms=0.1,
        output_tokens=n,
        ttft_ms=5,
        itl_ms=1,
        **knobs,
    )
    s, rows = run(sim, tokenizer=tokenizer_dir, requests=1)
    # match() found each request by its exact text; the tokenizer count is exact only if
    # every character came through whole.
    check_run(s, rows, timing=False)  # the split writes delay the stream on purpose
    for _, res, srv in rows:
        assert res.tokenizer_output_tokens == res.usage_completion_tokens == n
        assert res.follow_tokens == n - srv["tokens_per_event"][0]
    assert s["token_count_check"] == {"compared": 2, "mean_abs_diff": 0.0, "max_abs_diff": 0}
    # The reads really were split where it hurts.
    in_char, in_prefix, in_crlf = split_points(RecordingParser.feeds)
    print("SPLITS", split, vocab, knobs, in_char, in_prefix, in_crlf)
    assert in_char > 0
    if split < 6 and not knobs.get("fields") and not knobs.get("no_space"):
        assert in_prefix > 0
    if knobs.get("line_ending") == "crlf":
        assert in_crlf > 0


# --- framing variants ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "knobs",
    [
        {"line_ending": "crlf"},
        {"line_ending": "cr"},
        {"no_space": True},
        {"comments": True},
        {"fields": True},
        # The whole mixed vocabulary: 1 to 4-byte characters, JSON escapes (" and \\).
        {"vocab": "mixed", "output_tokens": 133, "tokens_per_chunk": 4, "itl_ms": 1},
        {"line_ending": "cr", "no_space": True, "comments": True, "fields": True},
    ],
    ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()),
)
def test_framing_variants_give_the_same_figures(sim_with, tokenizer_dir, knobs):
    sim = sim_with(**knobs)
    s, rows = run(sim, tokenizer=tokenizer_dir)
    check_run(s, rows)
    for _, res, srv in rows:
        assert (
            res.tokenizer_output_tokens == srv["completion_tokens"] == knobs.get("output_tokens", 8)
        )


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_both_endpoints_against_the_server(sim_with, tokenizer_dir, endpoint):
    sim = sim_with(comments=True, merge_events=2)
    s, rows = run(sim, "--endpoint", endpoint, tokenizer=tokenizer_dir)
    check_run(s, rows)
    paths = {srv["path"] for _, _, srv in rows}
    assert paths == {"/v1/chat/completions" if endpoint == "chat" else "/v1/completions"}


# --- what comes before the first token is not a token ------------------------------------


@pytest.mark.parametrize(
    "knobs",
    [
        {"keepalive_ms": 15},
        {"role_chunk": True},
        {"keepalive_ms": 10, "fields": True},
        {"keepalive_ms": 10, "line_ending": "cr"},
    ],
    ids=["keepalive", "role-chunk", "keepalive-with-fields", "keepalive-cr"],
)
def test_ttft_is_the_first_token_not_the_first_bytes(sim_with, tokenizer_dir, knobs):
    ttft = 150
    sim = sim_with(ttft_ms=ttft, itl_ms=3, output_tokens=5, **knobs)
    s, rows = run(sim, tokenizer=tokenizer_dir, requests=1)
    check_run(s, rows)  # TTFT as late as the server's first token, not later
    for rec, res, _ in rows:
        assert res.ttft_ms >= ttft
        # The first bytes (headers, role chunk, keep-alives) came long before it.
        assert (rec.headers_at - rec.start) * 1000 < ttft / 2
        assert rec.events == 1 + 5 + 3  # role, 5 tokens, finish, usage, [DONE]: no comment
    assert s["ttft_ms"]["p50"] >= ttft


# --- events that carry no token --------------------------------------------------------------


def test_empty_deltas_are_not_tokens(sim_with, tokenizer_dir):
    n = 8
    sim = sim_with(empty_deltas=True, output_tokens=n, itl_ms=5)
    s, rows = run(sim, tokenizer=tokenizer_dir)
    check_run(s, rows)
    for rec, res, _ in rows:
        assert res.token_events == n and len(res.itl_ms) == n - 1  # content events - 1
        assert rec.events == 1 + 2 * n + 3  # role, n tokens + n empty, finish, usage, [DONE]
    assert s["itl_ms"]["count"] == len(rows) * (n - 1)


@pytest.mark.parametrize("with_tokenizer", [True, False], ids=["tokenizer", "usage"])
def test_usage_only_chunk_is_not_a_token(sim_with, tokenizer_dir, with_tokenizer):
    sim = sim_with(output_tokens=9)
    s, rows = run(sim, tokenizer=tokenizer_dir if with_tokenizer else None)
    check_run(s, rows)
    for rec, res, srv in rows:
        assert res.token_events == 9 and rec.events == 1 + 9 + 3  # usage chunk: an event
        assert rec.usage == {
            "prompt_tokens": srv["prompt_tokens"],
            "completion_tokens": 9,
            "total_tokens": srv["prompt_tokens"] + 9,
        }
        assert res.usage_completion_tokens == 9 and res.output_tokens == 9
        assert res.follow_tokens == 8
    source = "tokenizer" if with_tokenizer else "usage"
    assert s["follow_tokens_source"] == {source: len(rows)}
    if with_tokenizer:
        assert s["token_count_check"] == {"compared": 4, "mean_abs_diff": 0.0, "max_abs_diff": 0}


# --- several tokens per event -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "with_tokenizer"), [(10, True), (9, False)], ids=["tokenizer-3-3-3-1", "usage-3x3"]
)
def test_several_tokens_per_event(sim_with, tokenizer_dir, output, with_tokenizer):
    sim = sim_with(tokens_per_chunk=3, output_tokens=output, itl_ms=10)
    s, rows = run(sim, tokenizer=tokenizer_dir if with_tokenizer else None)
    check_run(s, rows)  # ITL: one gap per event, each as late as the server's event
    events = -(-output // 3)
    for _, res, srv in rows:
        assert srv["tokens_per_event"][0] == 3
        assert res.token_events == events and len(res.itl_ms) == events - 1
        assert res.follow_tokens == output - 3
        assert res.tpot_ms == pytest.approx(res.follow_latency_ms / (output - 3))
        assert res.output_tokens == output
    assert s["itl_ms"]["count"] == len(rows) * (events - 1)
    assert s["tpot_ms"]["mean"] == pytest.approx(mean([r.tpot_ms for _, r, _ in rows]), rel=1e-3)
    assert s["follow_tokens_source"] == {"tokenizer" if with_tokenizer else "usage": len(rows)}


# --- reasoning models ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_tokens_are_first_tokens_and_content_has_its_own_ttfc(
    sim_with, tokenizer_dir, field
):
    thinking, itl = 4, 10
    sim = sim_with(reasoning_tokens=thinking, reasoning_field=field, output_tokens=10, itl_ms=itl)
    s, rows = run(sim, tokenizer=tokenizer_dir)
    late = check_run(s, rows)  # TTFT: the first reasoning token
    for rec, res, srv in rows:
        # TTFC: the first content token, the event after the reasoning ones.
        server_ttfc = (srv["token_times"][thinking] - srv["received_at"]) * 1000
        late.append(res.ttfc_ms - server_ttfc)
        assert rec.first_content_at == rec.token_times[thinking]
        # the client's gap between the two is the server's (each read late by its own noise)
        server_gap = (srv["token_times"][thinking] - srv["token_times"][0]) * 1000
        assert server_gap > 0  # the reasoning came first
        lag = (s.get("client_loop_lag_ms") or {}).get("max") or 0.0
        assert abs(res.ttfc_ms - res.ttft_ms - server_gap) < LATE_MAX_MS + lag
        assert res.follow_tokens == 9  # reasoning is generated output
    check_late(late, s)
    assert s["ttfc_ms"]["count"] == len(rows)


# --- ends without [DONE] --------------------------------------------------------------------


@pytest.mark.parametrize("usage", ["on", "off"])
def test_no_done_finish_reason_then_clean_end_is_a_success(sim_with, tokenizer_dir, usage):
    sim = sim_with(no_done=True)
    s, rows = run(sim, "--stream-usage", usage, tokenizer=tokenizer_dir)
    late = check_run(s, rows)
    for rec, res, srv in rows:
        assert rec.finish_reason == srv["finish_reason"] is not None
        assert rec.events == 1 + 8 + 1 + (usage == "on")  # role, tokens, finish, usage
        # The end is the clean end of the body, when the server finished it.
        late.append(abs(res.e2e_ms - (srv["done_at"] - srv["received_at"]) * 1000))
    check_late(late, s)
