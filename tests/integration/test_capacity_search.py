"""The capacity search against the simulator's batch slots: it finds exactly N, and its
claims hold in the simulator's own records."""

from __future__ import annotations

import time

from llm_users.measure.capacity import saturated
from llm_users.plugin.search import ttft_points
from tests.helpers import run_in_process

# N slots; every request takes S = ttft + (tokens - 1) * itl in a slot. Closed loop, think 0:
# with U <= N users nothing queues (TTFT = ttft_ms + the client's and network's lag). With
# U >= N + 1 the slots stay full, so every request sent finds no free slot unless another
# one ends first; the N completions of each S-long cycle leave N gaps summing to S, so at
# most N - 1 of the N requests of a cycle can wait less than S / N. With the SLO's slack
# at S / (2N), at most (N - 1) / N of them meet it: 2/3 for N = 3, below the 80 % target.
N = 3
TTFT_MS, ITL_MS, TOKENS = 20.0, 10.0, 14
S_MS = TTFT_MS + (TOKENS - 1) * ITL_MS  # 150 ms
SLACK_MS = S_MS / (2 * N)  # 25 ms
TARGET = 80.0
assert (N - 1) / N < TARGET / 100


def test_search_over_users_finds_the_batch_slots(simulator, capsys):
    sim = simulator(max_running=N, ttft_ms=TTFT_MS, itl_ms=ITL_MS, output_tokens=TOKENS)
    slo_ms = TTFT_MS + SLACK_MS
    plugin = run_in_process(
        sim.url,
        "--stream",
        "--search",
        "users",
        "--slo",
        f"ttft_ms={slo_ms:g}",
        "--slo-target",
        f"{TARGET:g}",
        "--search-warmup",
        "0.5",
        "--search-min-time",
        "1",
        "--search-min-requests",
        "20",
        "--search-probe-time",
        "15",
        users=1,
        timeout=120,
    )
    s = plugin.last_summary
    sr = s["search"]
    loads = [p["load"] for p in sr["probes"]]
    assert loads == [1, 2, 4, 3], sr["probes"]
    assert sr["highest_passing"]["load"] == N
    assert sr["lowest_failing"]["load"] == N + 1
    assert sr["met_slo"] is True
    # No bound rests on a straddling interval, and each interval says what it claims.
    for bound in (sr["highest_passing"], sr["lowest_failing"]):
        assert not bound["straddles_target"]
    lo, _ = sr["highest_passing"]["interval_percent"]
    _, hi = sr["lowest_failing"]["interval_percent"]
    assert lo >= TARGET > hi
    assert sr["lowest_failing"]["attainment_percent"] <= 100 * (N - 1) / N + 1e-9 or (
        sr["lowest_failing"]["stopped"] == "failure certain"
    )
    assert sr["goodput_requests_per_s"] > 0
    # The simulator's records: requests queued (started after they arrived) only when more
    # than N were in flight, and it never ran more than N at once.
    recs = sim.records()
    queued = [r for r in recs if r["started_at"] - r["received_at"] > 0]
    assert queued, "the probes above N never filled the slots"
    starts = sorted((r["started_at"], 1) for r in recs if r["done_at"]) + sorted(
        (r["done_at"], -1) for r in recs if r["done_at"]
    )
    running = peak = 0
    for _, delta in sorted(starts, key=lambda x: (x[0], x[1])):
        running += delta
        peak = max(peak, running)
    assert peak <= N
    out = capsys.readouterr().out
    assert "capacity search (users" in out
    assert f"highest load meeting the SLO: {N} users" in out


def _open_loop(sim, rate: float, users: int, per_user: int):
    return run_in_process(
        sim.url,
        "--stream",
        "--request-rate",
        f"{rate:g}",
        "--arrivals",
        "constant",
        "--requests-per-user",
        str(per_user),
        users=users,
        timeout=60,
    )


def test_the_saturation_detector_on_the_simulators_queue(simulator):
    """Capacity N / S = 20 requests/s. At 40/s the queue grows by 20 a second, so each
    second's TTFT is about a second more than the last; at 10/s (constant arrivals, 100 ms
    apart, 150 ms each) at most 2 of 3 slots are busy and nothing queues: TTFT stays flat."""
    sim = simulator(max_running=N, ttft_ms=TTFT_MS, itl_ms=ITL_MS, output_tokens=TOKENS)
    slo_ms = TTFT_MS + SLACK_MS
    over = _open_loop(sim, 2 * N / (S_MS / 1000), users=60, per_user=2)
    recs = sorted(sim.records(), key=lambda r: r["received_at"])
    waits = [r["started_at"] - r["received_at"] for r in recs]
    assert waits[-1] > waits[len(waits) // 2] > 0.5  # the simulator's queue grew
    points = ttft_points(over.sink.tally.total, time.time() + 60)
    assert saturated(points, slo_ms), points
    sim.reset()
    under = _open_loop(sim, 0.5 * N / (S_MS / 1000), users=20, per_user=3)
    assert all(r["started_at"] == r["received_at"] for r in sim.records())  # no queue
    points = ttft_points(under.sink.tally.total, time.time() + 60)
    assert len(points) >= 5
    assert not saturated(points, slo_ms), points
    assert not saturated(points, None), points
