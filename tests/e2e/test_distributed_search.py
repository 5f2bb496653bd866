"""The capacity search in a distributed run: the master drives the probes, two worker
processes split each probe's users, and the search finds exactly the simulator's N slots."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_distributed import Cluster
from tests.integration.test_capacity_search import ITL_MS, SLACK_MS, TARGET, TOKENS, TTFT_MS, N


def test_distributed_search_over_users_finds_the_batch_slots(simulator, tmp_path: Path) -> None:
    # The in-process test's timing argument holds whichever process a user lives in: with
    # U <= N users nothing queues; with N + 1 at most (N - 1) / N of the requests meet the
    # slack. Workers report every ~3 s, so a probe is decided at the first report after its
    # minimum: slower than in process, never a different verdict.
    sim = simulator(max_running=N, ttft_ms=TTFT_MS, itl_ms=ITL_MS, output_tokens=TOKENS)
    cluster = Cluster(
        tmp_path,
        sim.url,
        [
            "--headless", "--stream", "--search", "users",
            "--slo", f"ttft_ms={TTFT_MS + SLACK_MS:g}", "--slo-target", f"{TARGET:g}",
            "--search-warmup", "0.5", "--search-min-time", "1", "--search-min-requests", "20",
            "--search-probe-time", "15",
        ],
    )  # fmt: skip
    code, out = cluster.wait(timeout=180)
    assert code == 0, out[-3000:]
    s = cluster.result()
    sr = s["search"]
    assert [p["load"] for p in sr["probes"]] == [1, 2, 4, 3], sr["probes"]
    assert sr["highest_passing"]["load"] == N and sr["lowest_failing"]["load"] == N + 1
    assert not sr["highest_passing"]["straddles_target"]
    assert not sr["lowest_failing"]["straddles_target"]
    # both workers sent requests (the users were split), and every one of them was merged
    rows = cluster.raw_records()
    assert len({r["worker"] for r in rows}) == 2
    assert s["requests"] == sum(1 for r in rows if r["ok"])
    assert all(v["final_report"] for v in s["workers"].values())
    assert f"highest load meeting the SLO: {N} users" in out
