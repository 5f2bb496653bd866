"""The simulator's prefill cost, prefix cache, Responses API, /metrics, admission queue, global
decode clock and multi-turn records, against raw sockets and its own records."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import sseclient
from prometheus_client.parser import text_string_to_metric_families

from llm_users.simulator import SimulatorProcess
from llm_users.simulator.tokenizer import count_tokens
from llm_users.simulator.vocab import VOCABS
from tests.unit.simulator.test_simulator import CHAT, COMPLETIONS, chat, request

RESPONSES = "/v1/responses"
WORDS = VOCABS["en"]


def words(n: int, start: int = 0) -> str:
    """``n`` distinct simulator tokens (one each), from vocabulary word ``start`` on."""
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


# `server` and `sim` (the shared fast simulator, reset for each test) come from conftest.py


def ttft(rec) -> float:
    return rec["first_token_at"] - rec["received_at"]


def assert_ttft(rec, seconds: float) -> None:
    """The first token was scheduled ``seconds`` after arrival, and not written before."""
    assert rec["first_token_due"] - rec["received_at"] == pytest.approx(seconds, abs=1e-9)
    assert rec["first_token_at"] >= rec["first_token_due"]


# --- 1. prefill cost ------------------------------------------------------------------------


def test_prefill_cost_grows_with_the_prompt(sim):
    """ttft_ms 20 + 1,000 ms per 1k tokens * 100 tokens = 120 ms; 10 tokens: 30 ms."""
    sim.configure(ttft_ms=20, prefill_ms_per_1k_tokens=1000)
    for n, expected in ((100, 0.120), (10, 0.030)):
        body = chat(max_tokens=2, messages=[{"role": "user", "content": words(n)}])
        assert request(sim, CHAT, body).status == 200
        rec = sim.records()[-1]
        assert rec["prompt_tokens"] == n
        assert_ttft(rec, expected)


# --- 2. prefix cache ------------------------------------------------------------------------


def _completion(prompt: str, stream: bool = False, usage: bool = False) -> dict:
    body = {"model": "sim-model", "prompt": prompt, "max_tokens": 2, "stream": stream}
    if usage:
        body["stream_options"] = {"include_usage": True}
    return body


def test_prefix_cache_hits_whole_blocks(sim):
    """Blocks of 16: a 40-token prompt caches 2 blocks (32 tokens); a prompt sharing its first
    32 tokens hits 32; one sharing 20 hits 16; the TTFT pays 1 ms per uncached token."""
    sim.configure(prefix_cache=True, ttft_ms=10, prefill_ms_per_1k_tokens=1000)
    a = words(40)
    b = words(32) + " " + words(8, start=100)
    c = words(20) + " " + words(20, start=150)
    usage = [request(sim, COMPLETIONS, _completion(p)).json()["usage"] for p in (a, b, c)]
    assert [u["prompt_tokens_details"]["cached_tokens"] for u in usage] == [0, 32, 16]
    assert [u["prompt_tokens"] for u in usage] == [40, 40, 40]
    recs = sim.records()
    assert [(r["prompt_tokens"], r["cached_tokens"]) for r in recs] == [(40, 0), (40, 32), (40, 16)]
    for rec, uncached in zip(recs, (40, 8, 24), strict=True):
        assert_ttft(rec, 0.010 + uncached / 1000)
    stats = sim.stats()
    assert stats["prefix_cache_queries"] == 120 and stats["prefix_cache_hits"] == 48


def test_prefix_cache_in_chat_stream_usage(sim):
    """Chat prompts are their messages' tokens: 16 + 16 tokens, then the same 32 again."""
    sim.configure(prefix_cache=True)
    messages = [
        {"role": "system", "content": words(16)},
        {"role": "user", "content": words(16, 50)},
    ]
    seen = []
    for _ in range(2):
        r = request(sim, CHAT, chat(max_tokens=2, usage=True, messages=messages))
        seen.append(r.chunks()[-1]["usage"])
    assert [u["prompt_tokens_details"] for u in seen] == [
        {"cached_tokens": 0},
        {"cached_tokens": 32},
    ]
    assert seen[1]["prompt_tokens"] == 32


def test_prefix_cache_is_a_bounded_lru(sim):
    """Room for 2 blocks: a second 32-token prompt evicts the first one's blocks."""
    sim.configure(prefix_cache=True, prefix_cache_blocks=2)
    first, second = words(32), words(32, start=60)
    hits = []
    for prompt in (first, first, second, first):
        r = request(sim, COMPLETIONS, _completion(prompt))
        hits.append(r.json()["usage"]["prompt_tokens_details"]["cached_tokens"])
    assert hits == [0, 32, 0, 0]


def test_cached_prefill_cost(sim):
    sim.configure(prefix_cache=True, ttft_ms=10, cached_prefill_ms_per_1k_tokens=2000)
    for _ in range(2):
        request(sim, COMPLETIONS, _completion(words(48)))
    first, second = sim.records()
    assert_ttft(first, 0.010)  # nothing cached: no prefill cost configured
    assert_ttft(second, 0.010 + 0.096)  # 48 cached tokens * 2 ms


# --- 3. the Responses API -------------------------------------------------------------------


def _responses_events(r) -> list[tuple[str, dict]]:
    text = r.body.decode()
    out = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        kind = [ln[7:] for ln in lines if ln.startswith("event: ")]
        data = [ln[6:] for ln in lines if ln.startswith("data: ")]
        if data:
            out.append((kind[0] if kind else "", json.loads(data[0])))
    return out


def test_responses_stream_events(sim):
    sim.configure(ttft_ms=20, itl_ms=5)
    body = {
        "model": "sim-model",
        "instructions": "be brief",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hello world"}]}],
        "max_output_tokens": 4,
        "stream": True,
    }
    r = request(sim, RESPONSES, body)
    assert r.status == 200 and r.complete
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _responses_events(r)
    assert all(kind == data["type"] for kind, data in events)
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    kinds = [k for k, _ in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [d["delta"] for k, d in events if k == "response.output_text.delta"]
    assert "".join(deltas) == events[8][1]["text"]
    assert count_tokens("".join(deltas)) == 4
    final = events[-1][1]["response"]
    assert final["id"].startswith("resp_") and final["status"] == "incomplete"
    assert final["output"][0]["content"][0]["text"] == "".join(deltas)
    # "be brief" + "hello world": 4 tokens in.
    assert final["usage"] == {
        "input_tokens": 4,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 8,
    }
    rec = sim.records()[-1]
    assert rec["path"] == RESPONSES and rec["messages"] == ["system", "user"]
    assert rec["prompt_tokens"] == 4 and rec["completion_tokens"] == 4 and rec["completed"]
    assert_ttft(rec, 0.020)
    # The reference SSE parser sees the same event names.
    names = [e.event for e in sseclient.SSEClient(iter([r.body])).events()]
    assert names == kinds


def test_responses_non_streaming(sim):
    r = request(sim, RESPONSES, {"model": "sim-model", "input": "alpha beta gamma"})
    assert r.status == 200 and r.complete
    body = r.json()
    assert body["object"] == "response" and body["status"] == "completed"
    message = body["output"][0]
    assert message["type"] == "message" and message["role"] == "assistant"
    text = message["content"][0]
    assert text["type"] == "output_text" and count_tokens(text["text"]) == 64
    assert body["usage"]["input_tokens"] == 3 and body["usage"]["output_tokens"] == 64
    assert sim.records()[-1]["messages"] == ["user"]


def test_responses_reasoning_and_error_event(sim):
    sim.configure(reasoning_tokens=2)
    body = {"input": "hi", "max_output_tokens": 5, "stream": True}
    kinds = [k for k, _ in _responses_events(request(sim, RESPONSES, body))]
    assert kinds.count("response.reasoning_text.delta") == 2
    assert kinds.count("response.output_text.delta") == 3
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.output_text.delta")
    sim.configure(reasoning_tokens=0, fault="error_event", fault_after=2)
    events = _responses_events(request(sim, RESPONSES, body))
    assert [k for k, _ in events].count("response.output_text.delta") == 2
    assert events[-1][0] == "response.failed"
    assert events[-1][1]["response"]["error"]["code"] == "server_error"
    rec = sim.records()[-1]
    assert rec["fault"] == "error_event" and rec["completed"] is False


# --- 4. /metrics ----------------------------------------------------------------------------


def scrape(sim) -> dict:
    """{(sample name, frozenset(labels)): value} of the /metrics page."""
    with urllib.request.urlopen(sim.url + "/metrics", timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/plain")
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k not in ("model_name", "engine")}
            assert s.labels.get("model_name") == "sim-model", s
            out[(s.name, frozenset(labels.items()))] = s.value
    return out


def m(page: dict, name: str, **labels: str) -> float:
    return page[(name, frozenset(labels.items()))]


def test_metrics_are_the_records_totals(sim):
    sim.configure(prefix_cache=True)
    prompts = [words(20), words(20), words(5, start=70)]
    for i, prompt in enumerate(prompts):
        body = chat(max_tokens=3 + i, messages=[{"role": "user", "content": prompt}])
        assert request(sim, CHAT, body).status == 200
    recs = sim.records()
    page = scrape(sim)
    assert m(page, "vllm:prompt_tokens_total") == 45 == sum(r["prompt_tokens"] for r in recs)
    assert m(page, "vllm:generation_tokens_total") == 3 + 4 + 5
    assert m(page, "vllm:request_success_total", finished_reason="length") == 3
    assert m(page, "vllm:prefix_cache_queries_total") == 45
    assert m(page, "vllm:prefix_cache_hits_total") == 16  # the second prompt's first block
    assert m(page, "vllm:time_to_first_token_seconds_count") == 3
    assert m(page, "vllm:time_to_first_token_seconds_sum") == pytest.approx(
        sum(ttft(r) for r in recs), abs=1e-9
    )
    gaps = [
        b - a for r in recs for a, b in zip(r["token_times"], r["token_times"][1:], strict=False)
    ]
    assert m(page, "vllm:inter_token_latency_seconds_count") == len(gaps) == 2 + 3 + 4
    assert m(page, "vllm:inter_token_latency_seconds_sum") == pytest.approx(sum(gaps), abs=1e-9)
    e2e = [r["done_at"] - r["received_at"] for r in recs]
    assert m(page, "vllm:e2e_request_latency_seconds_sum") == pytest.approx(sum(e2e), abs=1e-9)
    assert m(page, "vllm:request_queue_time_seconds_count") == 3
    assert m(page, "vllm:request_queue_time_seconds_sum") == 0.0  # no cap, no queue
    # vLLM's bucket bounds.
    assert ("vllm:time_to_first_token_seconds_bucket", frozenset({("le", "0.001")})) in page
    assert ("vllm:inter_token_latency_seconds_bucket", frozenset({("le", "80.0")})) in page
    assert ("vllm:e2e_request_latency_seconds_bucket", frozenset({("le", "7680.0")})) in page
    assert m(page, "vllm:num_requests_running") == m(page, "vllm:num_requests_waiting") == 0
    assert sim.stats()["metrics_scrapes"] == 1


def _stream_in_thread(sim, body, out):
    t = threading.Thread(target=lambda: out.append(request(sim, CHAT, body, timeout=20)))
    t.start()
    return t


def test_max_running_queues_requests(sim):
    """Cap 1, three 30-token streams at 10 ms: one runs, two wait; they run one after another;
    KV usage is (prompt + generated so far) / 100 tokens."""
    sim.configure(max_running=1, ttft_ms=5, itl_ms=10, kv_cache_tokens=100)
    out: list = []
    body = chat(max_tokens=30, messages=[{"role": "user", "content": words(10)}])
    threads = [_stream_in_thread(sim, body, out) for _ in range(3)]
    deadline = time.monotonic() + 5
    while sim.stats()["waiting"] < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    page = scrape(sim)
    assert m(page, "vllm:num_requests_running") == 1
    assert m(page, "vllm:num_requests_waiting") == 2
    assert 0.10 <= m(page, "vllm:kv_cache_usage_perc") <= 0.40  # 10 prompt + 0..30 generated
    for t in threads:
        t.join(20)
    assert all(r.status == 200 and r.complete for r in out)
    recs = sorted(sim.records(), key=lambda r: r["started_at"])
    for before, after in zip(recs, recs[1:], strict=False):
        assert after["started_at"] >= before["done_at"]  # one at a time
        assert after["first_token_due"] - after["started_at"] == pytest.approx(0.005, abs=1e-9)
    queued = [r["started_at"] - r["received_at"] for r in recs]
    assert queued[0] == 0 and min(queued[1:]) > 0.25  # waited for >= one 30-token stream
    page = scrape(sim)
    assert m(page, "vllm:request_queue_time_seconds_sum") == pytest.approx(sum(queued), abs=1e-9)
    assert m(page, "vllm:num_requests_waiting") == 0


@pytest.mark.parametrize("mode", ["off", "garbage", "slow"])
def test_metrics_modes(sim, mode):
    sim.configure(metrics=mode, metrics_slow_ms=300)
    start = time.monotonic()
    if mode == "off":
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(sim.url + "/metrics", timeout=5)
        assert info.value.code == 404
    elif mode == "garbage":
        with urllib.request.urlopen(sim.url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert resp.status == 200
        with pytest.raises(ValueError):
            list(text_string_to_metric_families(text))
    else:
        page = scrape(sim)
        assert time.monotonic() - start >= 0.3
        assert m(page, "vllm:num_requests_running") == 0
    assert sim.stats()["metrics_scrapes"] == 1


def test_metrics_huge_is_a_valid_50_mb_page(sim):
    sim.configure(metrics="huge")
    with urllib.request.urlopen(sim.url + "/metrics", timeout=30) as resp:
        body = resp.read()
    assert 49 * 2**20 <= len(body) <= 50 * 2**20
    head, tail = body[:200_000].decode(), body[-200_000:].decode()
    assert "vllm:num_requests_running" in head
    last = tail.splitlines()[-1]
    assert last.startswith('sim_padding{i="') and last.endswith("} 1")
    # Both ends parse as Prometheus text (parsing all 50 MB is slow).
    list(text_string_to_metric_families(head.rsplit("\n", 1)[0] + "\n"))
    tail_lines = "\n".join(tail.splitlines()[1:]) + "\n"
    samples = [s for f in text_string_to_metric_families(tail_lines) for s in f.samples]
    assert len(samples) > 1000 and all(s.name == "sim_padding" for s in samples)


# --- 5. the global decode clock -------------------------------------------------------------


def test_global_decode_clock_aligns_every_stream_on_one_clock(sim):
    """itl 50 ms: every token of every stream is written on a tick origin + k * 50 ms, token
    i + 1 one tick after token i, the first on the first tick at or after arrival + TTFT."""
    sim.configure(decode_clock="global", ttft_ms=15, itl_ms=50)
    out: list = []
    threads = []
    for i in range(4):
        threads.append(_stream_in_thread(sim, chat(max_tokens=6), out))
        time.sleep(0.007 * (i + 1))  # arrivals off the clock's grid
    for t in threads:
        t.join(20)
    assert all(r.status == 200 and r.complete for r in out)
    clock = sim.stats()["decode_clock"]
    origin, period = clock["origin"], 0.050
    lag = clock["late_max_ms"] / 1000 + 1e-6  # the clock's own measured lateness
    assert lag < period / 2
    for rec in sim.records():
        ticks = [round((t - origin) / period) for t in rec["token_times"]]
        for t, k in zip(rec["token_times"], ticks, strict=True):
            assert 0 <= t - (origin + k * period) <= lag
        assert ticks == list(range(ticks[0], ticks[0] + 6))
        assert ticks[0] == math.ceil((rec["received_at"] + 0.015 - origin) / period - 1e-9)
        assert rec["first_token_due"] == pytest.approx(origin + ticks[0] * period, abs=1e-9)
    assert clock["writes"] >= 4 * 6


def test_global_decode_clock_non_streaming_ends_on_a_tick(sim):
    sim.configure(decode_clock="global", ttft_ms=15, itl_ms=20)
    request(sim, CHAT, chat(max_tokens=3, stream=False))
    rec = sim.records()[-1]
    origin = sim.stats()["decode_clock"]["origin"]
    k0 = math.ceil((rec["received_at"] + 0.015 - origin) / 0.020 - 1e-9)
    assert rec["first_token_due"] == pytest.approx(origin + k0 * 0.020, abs=1e-9)
    assert rec["first_token_at"] >= origin + (k0 + 2) * 0.020  # sent whole at the last tick


# --- 6. the package imports neither locust nor gevent ---------------------------------------


def test_simulator_imports_neither_locust_nor_gevent():
    code = (
        "import sys\n"
        "import llm_users.simulator\n"
        "from llm_users.simulator import SimConfig, SimulatorProcess\n"
        "import llm_users.simulator.__main__, llm_users.simulator.server\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert SimulatorProcess().command()[1:3] == ["-m", "llm_users.simulator"]


# --- 7. multi-turn records ------------------------------------------------------------------


def test_records_carry_the_message_roles(sim):
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello there"},
        {"role": "user", "content": [{"type": "text", "text": "and now ?"}]},
    ]
    request(sim, CHAT, chat(max_tokens=2, messages=messages))
    request(sim, COMPLETIONS, _completion("one two"))
    rec, completion = sim.records()
    assert rec["messages"] == ["system", "user", "assistant", "user"]
    assert rec["num_messages"] == 4 and rec["prompt_tokens"] == 2 + 1 + 2 + 3
    assert completion["messages"] is None and completion["prompt_tokens"] == 2
