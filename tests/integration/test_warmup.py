"""Warm-up requests against the simulator: sent, recorded, and in no figure."""

from __future__ import annotations

import orjson

from llm_users.role import Role
from tests.helpers import mean, run_in_process, server_ttft_ms


def test_the_first_started_requests_are_kept_out_of_every_figure(simulator, tmp_path):
    # The simulator stalls its first 4 arrivals by 400 ms: any of them in a figure shows.
    sim = simulator(ttft_ms=30, itl_ms=2, output_tokens=8, fault="stall", fault_first=4,
                    stall_ms=400)  # fmt: skip
    records_path = tmp_path / "records.jsonl"
    plugin = run_in_process(
        sim.url,
        "--stream",
        "--warmup-requests",
        "4",
        "--requests-per-user",
        "5",
        "--slo",
        "ttft_ms=1000",
        "--records",
        str(records_path),
        users=2,
    )
    s = plugin.last_summary
    server = sorted(sim.records(), key=lambda r: r["received_at"])
    assert len(server) == 10
    first4, rest = server[:4], server[4:]
    assert [r["id"] for r in first4] == [1, 2, 3, 4]  # the stalled ones arrived first
    assert s["requests"] == 6 and s["failures"] == 0
    assert s["ttft_ms"]["count"] == 6 and s["e2e_ms"]["count"] == 6
    assert s["goodput"]["of"] == 6
    assert s["warmup"]["requests"] == 4 and s["warmup"]["failures"] == 0
    # No stalled request in the figures: the slowest counted TTFT is far below the stall,
    # and the mean is the one of the 6 non-warm-up requests as the server saw them.
    assert s["ttft_ms"]["max"] < 300
    assert min(server_ttft_ms(first4)) > 400
    assert abs(s["ttft_ms"]["mean"] - mean(server_ttft_ms(rest))) < 5.0
    rows = [orjson.loads(line) for line in records_path.read_bytes().splitlines()]
    assert len(rows) == 10
    assert sum(r["warmup"] for r in rows) == 4
    # The warm-up rows are the stalled ones (their TTFT includes the 400 ms stall).
    assert all(r["ttft_ms"] > 400 for r in rows if r["warmup"])
    assert all(r["ttft_ms"] < 300 for r in rows if not r["warmup"])
    # Locust's own table never saw them either.
    entry = plugin.env.stats.get("/v1/chat/completions", "POST")
    assert entry.num_requests == 6


def test_each_worker_warms_up_with_its_share_of_the_whole_test():
    from llm_users.plugin.warmup import WarmupGate

    gates = [WarmupGate() for _ in range(3)]
    for i, gate in enumerate(gates):
        gate.start(10, 0.0, Role("worker", i, 3))
    assert [sum(gate.starts() for _ in range(10)) for gate in gates] == [4, 3, 3]


def test_warmup_time_counts_from_the_test_start():
    from llm_users.plugin.warmup import WarmupGate

    gate = WarmupGate()
    gate.start(2, 0.0, Role())
    assert [gate.starts() for _ in range(4)] == [True, True, False, False]
    gate.start(0, 3600.0, Role())
    assert all(gate.starts() for _ in range(5))
    gate.start(0, 0.0, Role())
    assert not gate.active and not gate.starts()
