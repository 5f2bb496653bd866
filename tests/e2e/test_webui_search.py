"""The capacity search from the web UI: its options are in the start form, a search posted
from it runs, and its probes show live on the /llm page (state.json and the search charts)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from llm_users.simulator import SimulatorProcess
from llm_users.simulator.process import stop_process
from tests.browser import chromium_context
from tests.e2e.test_webui import _free_port, _get, _wait_http, require_browser
from tests.helpers import ROOT, locust_cmd
from tests.integration.test_capacity_search import ITL_MS, SLACK_MS, TARGET, TOKENS, TTFT_MS, N

SEARCH_FIELDS = ("search", "searchWarmup", "searchMinTime", "searchMinRequests", "slo",
                 "sloTarget", "gpuHourCost")  # fmt: skip


def search_form(host: str) -> dict[str, str]:
    """A search posted from the start form (the same timing argument as the in-process test)."""
    return {
        "user_count": "8", "spawn_rate": "8", "host": host, "stream": "true",
        "search": "users", "slo": f"ttft_ms={TTFT_MS + SLACK_MS:g}", "slo_target": f"{TARGET:g}",
        "search_warmup": "0.5", "search_min_time": "1", "search_min_requests": "20",
        "search_probe_time": "15", "gpu_hour_cost": "2.5",
    }  # fmt: skip


@pytest.mark.timeout(150)
def test_search_started_from_the_form_shows_its_probes_live(tmp_path: Path) -> None:
    chromium = require_browser()
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    knobs = {"max_running": N, "ttft_ms": TTFT_MS, "itl_ms": ITL_MS, "output_tokens": TOKENS}
    with SimulatorProcess(**knobs) as sim:
        cmd = locust_cmd("--web-host", "127.0.0.1", "--web-port", str(port))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, env=env, cwd=ROOT)  # fmt: skip
        try:
            _wait_http(base, proc, timeout=20)
            with chromium_context(chromium, tmp_path) as ctx:
                ctx.set_default_timeout(10_000)
                page = ctx.new_page()
                page.goto(base)
                page.get_by_role("button", name="Custom parameters").click()
                for name in SEARCH_FIELDS:
                    assert page.locator(f"[name={name}]").count() == 1, name
                data = urllib.parse.urlencode(search_form(sim.url)).encode()
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                answer = json.loads(opener.open(base + "swarm", data=data, timeout=10).read())
                assert answer.get("success"), answer
                page.goto(base + "llm")
                live = []  # state.json polls while the search runs
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    st = json.loads(_get(base + "llm/state.json"))
                    if st["status"] == "final":
                        break
                    if st.get("search"):
                        live.append(st["search"])
                    time.sleep(0.5)
                page.wait_for_timeout(2500)  # the page's next poll draws the final probes
                drawn = page.evaluate("() => searchCharts.map(c => c.data[0].length)")
                rows = page.locator("#search-probes tr").count()
        finally:
            stop_process(proc, timeout=10)
    assert st["status"] == "final", st["status"]
    sr = st["search"]
    assert [p["load"] for p in sr["probes"]] == [1, 2, 4, 3], sr["probes"]
    assert sr["highest_passing"]["load"] == N and sr["lowest_failing"]["load"] == N + 1
    # live: probes appeared one by one, and the probe measuring was shown as it ran
    counts = [len(s["probes"]) for s in live]
    assert counts == sorted(counts) and len(set(counts)) >= 3, counts
    assert any(s.get("current", {}).get("verdict") == "running" for s in live)
    assert drawn == [4, 4] and rows == 5  # both charts: one point per probe; header + 4
    assert st["summary"]["cost"]["gpu_hour_cost"] == 2.5
