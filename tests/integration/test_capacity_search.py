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
    # (a request still waiting when its user was stopped, between probes, never started)
    started = [r for r in recs if r["started_at"] is not None]
    queued = [r for r in started if r["started_at"] - r["received_at"] > 0]
    assert queued, "the probes above N never filled the slots"
    ran = [r for r in started if r["done_at"] is not None]
    starts = sorted((r["started_at"], 1) for r in ran) + sorted((r["done_at"], -1) for r in ran)
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


def test_search_over_rate_finds_a_rate_a_rerun_confirms(simulator):
    """Open loop, constant arrivals: the N slots serve C = N / S requests/s. Below C nothing
    queues (arrivals 1/rate apart, each S long: at most N in flight); above C the queue grows
    by (rate - C) a second, each queued request adding S / N of wait, so waits grow by
    (rate / C - 1) seconds a second. A probe at rate C (1 + d) passes only if its requests
    met the SLO's slack through its warm-up and measured time T: d * T <= slack, about.

    A failing probe leaves its queue behind, drained by the next (lower) probe only at
    (C - rate'): a probe just below C can fail for the last one's queue. So the answer is at
    most C (1 + d), and may be lower; the rerun, on a fresh server, is the check of its claim."""
    sim = simulator(max_running=N, ttft_ms=TTFT_MS, itl_ms=ITL_MS, output_tokens=TOKENS)
    capacity = N / (S_MS / 1000.0)  # 20 requests/s
    slo_ms = TTFT_MS + SLACK_MS
    warmup_s = 2.0
    plugin = run_in_process(
        sim.url, "--stream", "--search", "rate", "--request-rate", f"{0.3 * capacity:g}",
        "--arrivals", "constant", "--slo", f"ttft_ms={slo_ms:g}", "--slo-target", f"{TARGET:g}",
        "--search-warmup", f"{warmup_s:g}", "--search-min-time", "1",
        "--search-min-requests", "20", "--search-probe-time", "10",
        users=12, timeout=300,
    )  # fmt: skip
    sr = plugin.last_summary["search"]
    best, worst = sr["highest_passing"], sr["lowest_failing"]
    assert best is not None and worst is not None, sr["probes"]
    # the queue model: a pass above C is bounded by the slack
    over_s = best["warmup_s"] + best["measured_s"]
    assert best["load"] <= capacity * (1 + SLACK_MS / 1000.0 / (over_s * TARGET / 100)), best
    assert worst["load"] - best["load"] <= 0.05 * best["load"] + 1e-9
    # rerun alone at that rate: as long as the probe (its warm-up kept out the same way)
    sim.reset()
    rate = best["load"]
    total = round(rate * over_s)
    users = 12
    rerun = run_in_process(
        sim.url, "--stream", "--request-rate", f"{rate:g}", "--arrivals", "constant",
        "--warmup-time", f"{best['warmup_s']:g}", "--slo", f"ttft_ms={slo_ms:g}",
        "--requests-per-user", str(max(1, total // users)), users=users, timeout=120,
    )  # fmt: skip
    gp = rerun.last_summary["goodput"]
    lo, hi = best["interval_percent"]
    assert lo <= gp["percent"] <= hi, (gp, best)
    # ... and the simulator's records agree: the rerun's measured requests whose server-side
    # TTFT (queue included) met the SLO, against the client's count (a request's client TTFT
    # is its server TTFT plus the network and the client's loop lag)
    recs = sorted((r for r in sim.records() if r["first_token_at"]), key=lambda r: r["received_at"])
    measured = recs[len(recs) - gp["of"] :]
    server_met = sum((r["first_token_at"] - r["received_at"]) * 1000 <= slo_ms for r in measured)
    assert server_met >= gp["requests_meeting_slo"]
