"""Take docs/images/webui-search.png: the /llm page's capacity search (attainment and TTFT p99
against load, the probe table) after a search started from the web form on the simulator.

Usage: python scripts/webui_search_screenshot.py [out.png]  (needs /usr/bin/chromium and
playwright).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from llm_users.simulator import SimulatorProcess
from llm_users.simulator.process import stop_process
from tests.browser import CHROMIUM_ARGS
from tests.e2e.test_webui import _free_port, _get, _wait_http, require_browser
from tests.e2e.test_webui_search import search_form
from tests.helpers import ROOT, locust_cmd

OUT = ROOT / "docs" / "images" / "webui-search.png"


def main(out: str = str(OUT)) -> None:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    # 6 slots, 150 ms a request: the search over users finds 6
    sim = SimulatorProcess(max_running=6, ttft_ms=20, itl_ms=10, output_tokens=14)
    with sim, tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(locust_cmd("--web-host", "127.0.0.1", "--web-port", str(port)),
                                env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            _wait_http(base, proc, timeout=20)
            form = search_form(sim.url) | {"slo": "ttft_ms=32.5"}  # slack S / (2 x 6)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            opener.open(base + "swarm", data=urllib.parse.urlencode(form).encode(), timeout=10)
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                if json.loads(_get(base + "llm/state.json"))["status"] == "final":
                    break
                time.sleep(1)
            with sync_playwright() as pw:
                ctx = pw.chromium.launch_persistent_context(
                    tmp, executable_path=require_browser(), headless=True, args=CHROMIUM_ARGS,
                    viewport={"width": 1240, "height": 900},
                )  # fmt: skip
                page = ctx.new_page()
                page.goto(base + "llm")
                page.wait_for_function("searchCharts.length === 2")
                page.wait_for_timeout(2500)
                page.locator("#search-box").screenshot(path=out)
                ctx.close()
        finally:
            stop_process(proc, timeout=10)
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:2])
