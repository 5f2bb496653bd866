"""--server-metrics against the simulator: its figures equal the simulator's own, `auto` says
why when there are none, the plugin's own /metrics reads back, compare gates two real runs."""

from __future__ import annotations

import json
import math
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import gevent
import pytest
from locust.env import Environment
from locust.event import Events
from prometheus_client.parser import text_string_to_metric_families

from llm_users import LLMUser, setup
from llm_users.simulator import SimulatorProcess
from llm_users.simulator.metrics import TTFT_BUCKETS
from tests.helpers import ROOT, locust_cmd, parse_options, run_in_process


def _nearest_rank(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def _bucket_of(ms: float) -> tuple[float, float]:
    """The simulator's (vLLM's) TTFT bucket holding ``ms``: (lower, upper] in ms."""
    lower = 0.0
    for le in TTFT_BUCKETS:
        if ms <= le * 1000.0 + 1e-9:
            return lower, le * 1000.0
        lower = le * 1000.0
    return lower, math.inf


def test_server_figures_equal_the_simulators_own(
    shared_sim: SimulatorProcess, tmp_path: Path
) -> None:
    sim = shared_sim
    sim.configure(ttft_ms=30, itl_ms=3, output_tokens=12, max_running=3, metrics="on")
    sim.reset()
    html = tmp_path / "report.html"
    plugin = run_in_process(
        sim.url, "--stream", "--requests-per-user", "6", "--server-metrics-interval", "0.2",
        "--html-report", str(html), users=5,
    )  # fmt: skip
    summary = plugin.last_summary
    assert summary is not None
    srv = summary["server"]
    recs = [r for r in sim.records() if r["first_token_at"]]
    stats = sim.stats()
    assert srv["how"] == "auto" and srv["source"] == f"{sim.url}/metrics"
    assert srv["failed_scrapes"] == 0 and srv["scrapes"] >= 2
    # counts: exactly the simulator's (the baseline scrape is taken before any request)
    assert srv["requests_finished"] == stats["completed"] == 30 == summary["requests"]
    assert srv["ttft_ms"]["count"] == len(recs) == 30
    assert srv["queue_time_ms"]["count"] == 30
    assert srv["generation_tokens"] == sum(r["completion_tokens"] for r in recs)
    assert srv["prompt_tokens"] == sum(r["prompt_tokens"] for r in recs)
    # the mean from _sum/_count: the simulator's own TTFTs
    true_ttft = [(r["first_token_at"] - r["received_at"]) * 1000.0 for r in recs]
    assert srv["ttft_ms"]["mean"] == pytest.approx(sum(true_ttft) / len(true_ttft), rel=1e-6)
    # percentiles: in the same histogram bucket as the exact value (the page's resolution)
    for p in (50, 90, 99):
        lo, hi = _bucket_of(_nearest_rank(true_ttft, p))
        assert lo - 1e-6 <= srv["ttft_ms"][f"p{p}"] <= hi + 1e-6, (p, srv["ttft_ms"])
    # 5 users, 3 generating at most: the gauges saw the queue
    assert srv["running"]["max"] <= 3 and srv["waiting"]["max"] <= 2
    assert srv["running"]["max"] >= 1
    assert srv["series"] and all("running" in pt for pt in srv["series"])
    assert srv["t0_unix"] is not None
    page = html.read_text()  # the HTML report's section: the figures and the chart
    assert '<section id="server">' in page and 'id="chart-server-time"' in page
    assert f'data-key="ttft_ms.mean" data-value="{srv["ttft_ms"]["mean"]!r}"' in page


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("off", "not available: HTTP 404"),
        ("garbage", "not available: not in the Prometheus text format (an HTML page)"),
        ("slow", "not available: timeout after 2 s"),
    ],
)
def test_auto_reports_not_available(shared_sim: SimulatorProcess, mode: str, why: str) -> None:
    sim = shared_sim
    sim.configure(ttft_ms=5, itl_ms=1, output_tokens=3, max_running=0, metrics=mode,
                  metrics_slow_ms=4000)  # fmt: skip
    sim.reset()
    plugin = run_in_process(sim.url, "--stream", "--requests-per-user", "2", users=2)
    summary = plugin.last_summary
    assert summary is not None and summary["requests"] == 4
    assert summary["server"] == {"source": None, "how": "auto", "not_available": why}
    assert sim.stats()["metrics_scrapes"] == 1  # the probe, no scraping after it


def test_off_never_scrapes(shared_sim: SimulatorProcess) -> None:
    sim = shared_sim
    sim.configure(ttft_ms=5, itl_ms=1, output_tokens=3, metrics="on")
    sim.reset()
    plugin = run_in_process(sim.url, "--requests-per-user", "2", "--server-metrics", "off", users=2)
    assert plugin.last_summary is not None
    assert plugin.last_summary["server"]["not_available"] == "off (--server-metrics off)"
    assert sim.stats()["metrics_scrapes"] == 0


def test_huge_page_is_refused_bounded(tmp_path: Path) -> None:
    """A ~50 MB page: refused at the size cap, in a locust under a 3 GB address-space limit."""
    out = tmp_path / "s.json"
    with SimulatorProcess(ttft_ms=5, itl_ms=1, output_tokens=3, metrics="huge") as sim:
        # the simulator builds its 50 MB once: not in the probe's 2 s on a busy machine
        with urllib.request.urlopen(f"{sim.url}/metrics", timeout=60) as resp:
            assert len(resp.read()) > 40 * 1024 * 1024
        sim.reset()
        cmd = ["prlimit", f"--as={3 * 1024**3}", *locust_cmd(
            "--headless", "-u", "2", "-r", "2", "--host", sim.url, "--requests-per-user", "2",
            "--summary-json", str(out))]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=ROOT,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        scrapes = sim.stats()["metrics_scrapes"]
    srv = json.loads(out.read_text())["server"]
    assert srv["source"] is None and srv["how"] == "auto"
    assert (
        srv["not_available"] == f"not available: page larger than {8 * 1024 * 1024} bytes, not read"
    )
    assert scrapes == 1
    assert "server metrics: not available: page larger than" in proc.stdout


def test_plugin_metrics_read_by_prometheus_parser(
    shared_sim: SimulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The web UI's /metrics after a run: a stock parser reads it; counts equal the summary's."""
    monkeypatch.chdir(tmp_path)  # the web UI parses the command line: no config files
    monkeypatch.setattr("sys.argv", ["locust"])
    sim = shared_sim
    sim.configure(ttft_ms=10, itl_ms=2, output_tokens=8, metrics="on", max_running=0)
    sim.reset()
    opts = parse_options("--stream", "--requests-per-user", "5")
    env = Environment(user_classes=[LLMUser], events=Events(), host=sim.url, parsed_options=opts)
    plugin = setup(env)
    runner = env.create_local_runner()
    web_ui = env.create_web_ui("127.0.0.1", 0)
    try:
        plugin.on_init()
        runner.start(3, spawn_rate=3)
        with gevent.Timeout(60):
            runner.greenlet.join()
        resp = web_ui.app.test_client().get("/metrics")
    finally:
        web_ui.stop()
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    fams = {f.name: f for f in text_string_to_metric_families(resp.get_data(as_text=True))}
    summary = plugin.last_summary
    assert summary is not None and summary["requests"] == 15
    for short, key in (("ttft", "ttft_ms"), ("tpot", "tpot_ms"), ("e2e", "e2e_ms"),
                       ("itl", "itl_ms")):  # fmt: skip
        fam = fams[f"llm_users_{short}_seconds"]
        count = next(s.value for s in fam.samples if s.name.endswith("_count"))
        inf = next(s.value for s in fam.samples if s.labels.get("le") == "+Inf")
        assert count == inf == summary[key]["count"], short
    req = next(s.value for s in fams["llm_users_requests"].samples)
    tokens = next(s.value for s in fams["llm_users_output_tokens"].samples)
    assert req == summary["requests"] and tokens == summary["output_tokens"]


def _run_json(sim: SimulatorProcess, path: Path) -> dict[str, Any]:
    plugin = run_in_process(
        sim.url, "--stream", "--requests-per-user", "8", "--summary-json", str(path), users=4
    )
    assert plugin.last_summary is not None
    return json.loads(path.read_text())


def test_compare_gates_a_planted_regression(shared_sim: SimulatorProcess, tmp_path: Path) -> None:
    sim = shared_sim
    # 150 ms to first token: loop lag on a busy machine (tens of ms) stays well inside +50 %
    sim.configure(ttft_ms=150, itl_ms=2, output_tokens=8, metrics="on", max_running=0)
    base = _run_json(sim, tmp_path / "base.json")
    same = _run_json(sim, tmp_path / "same.json")
    sim.configure(ttft_ms=450)  # the planted regression: 3x the time to first token
    worse = _run_json(sim, tmp_path / "worse.json")
    assert worse["server"]["ttft_ms"]["mean"] > 2 * base["server"]["ttft_ms"]["mean"]
    assert same["requests"] == base["requests"] == worse["requests"] == 32
    rules = "ttft_ms.p50>+50%,server.ttft_ms.mean>+50%"

    def compare(new: str) -> subprocess.CompletedProcess[str]:
        cmd = ["python", "-m", "llm_users.report.compare", str(tmp_path / "base.json"),
               str(tmp_path / new), "--fail-on", rules]  # fmt: skip
        cmd[0] = __import__("sys").executable
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)

    ok, bad = compare("same.json"), compare("worse.json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert bad.returncode == 3, bad.stdout + bad.stderr
    assert "server.ttft_ms.mean" in bad.stdout + bad.stderr
