"""Prompt sources, load models and figures beyond the seed, against the simulator."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from tests.helpers import lag_ms, run_in_process, sim_lag_ms

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"


def _user_prompts(records: list[dict]) -> list[int]:
    return [r["prompt_tokens"] for r in records]


def test_text_and_jsonl_datasets_are_sent_in_order(simulator, tmp_path):
    sim = simulator(ttft_ms=1, itl_ms=1, output_tokens=3)
    path = tmp_path / "p.txt"
    path.write_text("alpha\nalpha beta\n\nalpha beta gamma\n")
    s = run_in_process(
        sim.url,
        "--dataset",
        str(path),
        "--endpoint",
        "completions",
        "--requests-per-user",
        "6",
        users=1,
    ).last_summary
    assert s["requests"] == 6
    assert _user_prompts(sim.records()) == [1, 2, 3, 1, 2, 3]  # blank line skipped, cycled
    sim.reset()
    s = run_in_process(
        sim.url, "--dataset", str(DATA / "prompts.jsonl"), "--requests-per-user", "4", users=1
    ).last_summary
    assert s["requests"] == 4 and s["failures"] == 0
    jsonl_max = [r["max_tokens"] for r in sim.records()]
    assert 16 in jsonl_max  # a line's own max_tokens wins over --max-tokens
    assert 128 in jsonl_max


def test_sharegpt_with_recorded_output_lengths(simulator):
    sim = simulator(ttft_ms=1, itl_ms=1)
    s = run_in_process(
        sim.url,
        "--dataset",
        str(DATA / "sharegpt.json"),
        "--dataset-output-len",
        "on",
        "--requests-per-user",
        "2",
        users=1,
    ).last_summary
    assert s["requests"] == 2
    # "Put it in boiling water for 7 minutes." is 8 words: that request's max_tokens
    assert sim.records()[0]["max_tokens"] == 8


def test_input_tokens_are_exact(simulator, tokenizer_dir):
    sim = simulator(ttft_ms=1, itl_ms=1, output_tokens=2)
    run_in_process(
        sim.url,
        "--endpoint",
        "completions",
        "--input-tokens",
        "37",
        "--tokenizer",
        str(tokenizer_dir),
        "--requests-per-user",
        "5",
        users=2,
    )
    counts = _user_prompts(sim.records())
    assert counts == [37] * 10
    sim.reset()
    run_in_process(
        sim.url,
        "--endpoint",
        "completions",
        "--input-tokens",
        "40",
        "--input-tokens-spread",
        "0.25",
        "--tokenizer",
        str(tokenizer_dir),
        "--requests-per-user",
        "10",
        users=2,
    )
    counts = _user_prompts(sim.records())
    assert all(30 <= c <= 50 for c in counts) and len(set(counts)) > 3


def test_open_loop_rate_and_queue_delay(simulator):
    sim = simulator(ttft_ms=5, itl_ms=1, output_tokens=5)
    pairs: list = []
    plugin = run_in_process(
        sim.url,
        "--stream",
        "--request-rate",
        "50",
        "--arrivals",
        "constant",
        "--requests-per-user",
        "25",
        users=4,
        collect=pairs,
    )
    s = plugin.last_summary
    assert s["requests"] == 100
    # constant arrivals at 50 requests/s: every due time 20 ms after the one before
    due = gaps_of(sorted(rec.intended_start for rec, _ in pairs))
    assert due == pytest.approx([0.02] * 99, abs=1e-9)
    # each request started when due, up to the loop lag (the run measures it)
    lag = lag_ms(s, "p99")
    assert s["queue_delay_ms"]["count"] == 100 and s["queue_delay_ms"]["p50"] < 5 + lag
    # the server saw the client's starts: 50 requests/s, as late as the client's own delay
    arrivals = sorted(r["received_at"] for r in sim.records())
    late = (2.0 + s["queue_delay_ms"]["max"] + sim_lag_ms(sim, "max")) / 1000
    assert abs((arrivals[-1] - arrivals[0]) - 99 * 0.02) < late
    started = gaps_of(sorted(rec.start for rec, _ in pairs))
    off = sorted(abs(a - b) for a, b in zip(gaps_of(arrivals), started, strict=True))
    late = 2.0 + lag + sim_lag_ms(sim, "p99")  # the simulator stamps when its loop gets round
    assert off[89] < late / 1000, (late, off)
    assert s["e2e_from_intended_ms"]["mean"] >= s["e2e_ms"]["mean"]


def test_users_that_cannot_keep_up_are_reported(simulator):
    sim = simulator(ttft_ms=50, itl_ms=5, output_tokens=5)
    s = run_in_process(
        sim.url, "--stream", "--request-rate", "100", "--requests-per-user", "10", users=2
    ).last_summary
    assert s["queue_delay_ms"]["max"] > 100
    assert any("could not keep up with 100 requests/s" in n for n in s["notes"])


def test_sweep_prints_one_row_per_step(simulator, capsys):
    # ~100 ms a request: the server's pace bounds each user, not the client's CPU (a busy
    # machine must not flatten the rise)
    sim = simulator(ttft_ms=40, itl_ms=10, output_tokens=6)
    s = run_in_process(
        sim.url, "--stream", "--sweep", "1,2,3", "--sweep-step-time", "1", users=1
    ).last_summary
    rows = s["sweep"]
    assert [r["users"] for r in rows] == [1.0, 2.0, 3.0]
    assert all(r["requests"] > 0 for r in rows)
    # more users, more throughput against a server that is not saturated
    assert (
        rows[0]["output_tokens_per_s"]
        < rows[1]["output_tokens_per_s"]
        < rows[2]["output_tokens_per_s"]
    )
    assert sum(r["requests"] for r in rows) == s["requests"]
    assert "sweep (users):" in capsys.readouterr().out


def test_goodput_and_records(simulator, tmp_path):
    sim = simulator(
        ttft_ms=20, itl_ms=1, output_tokens=5, fault="stall", stall_ms=200, fault_every=2
    )
    records = tmp_path / "r.jsonl"
    s = run_in_process(
        sim.url,
        "--stream",
        "--slo",
        "ttft_ms=100",
        "--records",
        str(records),
        "--requests-per-user",
        "5",
        users=2,
    ).last_summary
    assert s["goodput"]["of"] == 10
    assert s["goodput"]["requests_meeting_slo"] == 5  # every second request stalls 200 ms
    lines = [json.loads(x) for x in records.read_text().splitlines()]
    assert len(lines) == 10 == s["requests"] + s["failures"]
    assert {
        "start_wall",
        "ttft_ms",
        "e2e_ms",
        "output_tokens",
        "status",
        "failure",
        "worker",
    } <= set(lines[0])


def test_rate_sweep_steps_the_open_loop_rate(simulator):
    # constant arrivals: each step's count is fixed by its rate and length, not by chance
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=3)
    s = run_in_process(
        sim.url,
        "--stream",
        "--request-rate",
        "10",
        "--arrivals",
        "constant",
        "--sweep",
        "10,40",
        "--sweep-of",
        "rate",
        "--sweep-step-time",
        "2",
        users=8,
    ).last_summary
    rows = s["sweep"]
    assert [r["rate"] for r in rows] == [10.0, 40.0]
    assert all(abs(r["duration_s"] - 2) < 0.3 for r in rows)
    # 10/s then 40/s for 2 s each: 20 then 80 requests, give or take the edges
    assert 18 <= rows[0]["requests"] <= 22, rows[0]
    assert 76 <= rows[1]["requests"] <= 82, rows[1]
    assert 9 <= rows[0]["requests_per_s"] <= 11
    assert 38 <= rows[1]["requests_per_s"] <= 41


def test_seed_repeats_the_random_prompts_and_the_arrival_times(simulator):
    sim = simulator(ttft_ms=1, itl_ms=1, output_tokens=2)
    plugin_summary: dict = {}

    def run(seed: str) -> tuple[list[int], list[float]]:
        sim.reset()
        pairs: list = []
        plugin = run_in_process(
            sim.url,
            "--prompt-type",
            "random",
            "--request-rate",
            "40",
            "--seed",
            seed,
            "--requests-per-user",
            "30",
            users=1,
            collect=pairs,
        )
        s = plugin.last_summary
        plugin_summary.update(s)
        recs = sorted(sim.records(), key=lambda r: r["received_at"])
        arrived = gaps_of([r["received_at"] for r in recs])
        # The arrivals the server saw are the client's starts, up to the loop lag (a start
        # may be late itself, when a short gap finds the user still busy: the same at both).
        started = gaps_of(sorted(rec.start for rec, _ in pairs))
        off = sorted(abs(a - b) for a, b in zip(arrived, started, strict=True))
        # ... and up to the simulator's own lag: its arrival stamp waits for its loop
        late = 2.0 + lag_ms(s, "p99") + sim_lag_ms(sim, "p99")
        assert off[len(off) * 9 // 10] < late / 1000, (late, off, s.get("notes"))
        due = gaps_of(sorted(rec.intended_start for rec, _ in pairs))
        return [r["prompt_tokens"] for r in recs], due

    prompts_a, gaps_a = run("7")
    assert plugin_summary["seed"] == 7
    prompts_b, gaps_b = run("7")
    prompts_c, gaps_c = run("8")
    assert len(prompts_a) == len(prompts_b) == 30
    assert prompts_a == prompts_b and len(set(prompts_a)) > 1
    # the same Poisson gaps: the due times are drawn from the seed, whatever the load
    assert gaps_a == pytest.approx(gaps_b, abs=1e-9)
    assert statistics.pstdev(gaps_a) > 0.01  # and they are random gaps, not constant ones
    # another seed, other draws
    assert prompts_c != prompts_a
    other = sorted(abs(a - c) for a, c in zip(gaps_a, gaps_c, strict=True))
    assert other[len(other) // 2] > 0.005, other


def gaps_of(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_headers_system_prompt_and_extra_body_reach_the_server():
    import gevent
    from gevent.server import StreamServer

    seen: list[bytes] = []
    body = (
        b'{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}'
    )
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (
            len(body),
            body,
        )
    )

    def handle(sock, _addr):
        buf = b""
        while b"\r\n\r\n" not in buf or not buf.rstrip().endswith(b"}"):
            buf += sock.recv(65536)
        seen.append(buf)
        sock.sendall(answer)
        gevent.sleep(0.01)
        sock.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    try:
        s = run_in_process(
            f"http://127.0.0.1:{server.server_port}",
            "--header",
            "X-Tenant: blue",
            "--header",
            "X-Trace: 7",
            "--system-prompt",
            "Be brief.",
            "--no-stream",  # the server above answers with one JSON body
            "--sampling",
            "original",
            "--extra-body",
            '{"ignore_eos": true, "top_p": 0.9}',
            "--preflight",
            "off",
            "--requests-per-user",
            "1",
            users=1,
        )
    finally:
        server.stop()
    assert s.last_summary["requests"] == 1, s.last_summary
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert b"\r\nX-Tenant: blue\r\n" in head and b"\r\nX-Trace: 7\r\n" in head
    req = json.loads(body)
    assert req["messages"][0] == {"role": "system", "content": "Be brief."}
    assert req["ignore_eos"] is True and req["top_p"] == 0.9  # --extra-body wins over --sampling
    assert req["temperature"] == 0.01


def test_ttfc_is_an_slo_key_checked_per_request(simulator):
    # 10 of 14 tokens are reasoning, 20 ms apart: the first content token comes >= 205 ms after
    # the request is sent, whatever the load (the simulator sleeps at least that long).
    sim = simulator(ttft_ms=5, itl_ms=20, output_tokens=14, reasoning_tokens=10)
    for limit, met in (("120", 0), ("60000", 6)):
        rows: list = []
        s = run_in_process(
            sim.url, "--stream", "--slo", f"ttfc_ms={limit}", "--requests-per-user", "3",
            users=2, collect=rows,
        ).last_summary  # fmt: skip
        assert s["slo"] == {"ttfc_ms": float(limit)}
        assert s["goodput"]["of"] == 6 and s["goodput"]["requests_meeting_slo"] == met
        for _rec, res in rows:  # each request judged by its own time to first content
            assert res.ttfc_ms >= 5 + 10 * 20 > float(limit) or met
            assert res.slo_met is (res.ttfc_ms <= float(limit))
