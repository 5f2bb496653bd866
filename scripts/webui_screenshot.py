"""Take docs/images/webui-charts.png: the /llm page's charts after a short web UI run on the
simulator.

Usage: python scripts/webui_screenshot.py [seconds] [out.png]  (needs the browser `make install`
chose, and playwright). The simulator serves /metrics, so the page also charts the server's series.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from llm_users.simulator import SimulatorProcess
from llm_users.simulator.process import stop_process
from tests.browser import CHROMIUM_ARGS, require_browser
from tests.e2e.test_webui import _free_port, _wait_http
from tests.helpers import ROOT, locust_cmd

OUT = ROOT / "docs" / "images" / "webui-charts.png"


def main(seconds: float = 40.0, out: str = str(OUT)) -> None:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    cmd = locust_cmd("--web-host", "127.0.0.1", "--web-port", str(port), "--stream")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    # some stalls and a few errors, so the p99 lines and the failures have something to show
    sim = SimulatorProcess(
        ttft_ms=60,
        itl_ms=12,
        output_tokens=60,
        faults=("stall", "http_error"),
        fault_rate=0.03,
        stall_ms=400,
        seed=1,
        max_running=6,
    )  # fmt: skip  (8 users: some wait in the server's queue)
    with sim, tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            _wait_http(base, proc, timeout=20)
            data = f"user_count=8&spawn_rate=0.5&host={sim.url}".encode()
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                base + "swarm", data=data, timeout=10
            )
            with sync_playwright() as pw:
                ctx = pw.chromium.launch_persistent_context(
                    tmp, executable_path=require_browser(), headless=True, args=CHROMIUM_ARGS,
                    viewport={"width": 1240, "height": 900},
                )  # fmt: skip
                page = ctx.new_page()
                page.goto(base + "llm")
                time.sleep(seconds)
                page.wait_for_function("window.llmCharts.length > 0")
                page.wait_for_timeout(2500)  # one more poll
                OUT.parent.mkdir(exist_ok=True)
                page.locator("#charts").screenshot(path=out)
                ctx.close()
        finally:
            stop_process(proc, timeout=10)
    print(out)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 40.0, *sys.argv[2:3])
