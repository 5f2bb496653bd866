"""The web UI in headless Chromium: the start form, the live LLM tab, the final summary, no key.

A real `locust` (web UI, no --headless) against the built-in simulator, driven by Playwright
with the Chrome/Chromium that scripts/install-browser.sh chose (tests/browser.py); without
one the test skips, and fails under CI=true.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from llm_users.simulator import SimulatorProcess
from llm_users.simulator.process import stop_process
from tests.browser import chromium_context, require_browser
from tests.helpers import ROOT, locust_cmd

pytestmark = pytest.mark.browser

CLI_KEY, ENV_KEY = "sk-test-SECRET", "sk-env-SECRET-2"
LEAK = "SECRET"  # in both keys, and in nothing else the UI serves
PLUGIN_OPTIONS = ("promptType", "maxTokens", "stream", "model", "requestsPerUser")
PATH_OPTIONS = ("tokenizer", "dataset", "summaryJson", "records")  # never set from a browser
SEED_ROWS = {
    "Average first token latency (ms)": "average_first_token_latency_ms",
    "Average follow latency (ms)": "average_follow_latency_ms",
    "Average follow tokens": "average_follow_tokens",
    "Follow throughput (tokens/s)": "follow_throughput_tokens_per_s",
}
ROUTES = (
    "",
    "stats/requests",
    "llm",
    "llm/summary.json",
    "llm/summary.csv",
    "llm/state.json",
    "llm/figures.json",
    "exceptions",
    "tasks",
    "logs",
    "stats/requests/csv",
    "stats/failures/csv",
    "stats/report",
)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with _OPENER.open(url, timeout=10) as resp:
        return resp.read().decode()


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "locust exited before its web UI came up"
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no web UI at {url} within {timeout:g} s")


def _poll(page: Any, fn: Any, timeout_s: float, what: str) -> Any:
    """Re-evaluate ``fn()`` until truthy; waits in the browser's own loop, bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        page.wait_for_timeout(250)


def _tab_rows(page: Any) -> dict[str, str]:
    """The LLM tab's table: figure -> "Value / count" cell."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('table tbody tr')]
            .map(r => [r.cells[0].innerText.trim(), (r.cells[1] || {}).innerText]))"""
    )


@pytest.mark.timeout(60)
def test_web_ui_llm_tab_live_and_final(tmp_path: Path) -> None:
    chromium = require_browser()
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    log = tmp_path / "locust.log"
    env = dict(os.environ, OPENAI_API_KEY=ENV_KEY, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    # The server wants the command-line key: the form's empty key field must not replace it.
    with (
        SimulatorProcess(ttft_ms=50, itl_ms=10, output_tokens=40, api_key=CLI_KEY) as sim,
        log.open("wb") as out,
    ):
        # the key goes to --host as given at start (typed again in the form: the same origin)
        cmd = locust_cmd("--web-host", "127.0.0.1", "--web-port", str(port), "--stream",
                         "--api-key", CLI_KEY, "--host", sim.url)  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT
        )
        try:
            _wait_http(base, proc, timeout=20)
            with chromium_context(chromium, tmp_path) as ctx:
                _drive(ctx, base, sim)
            for route in ROUTES:
                assert LEAK not in _get(base + route), f"API key served by /{route}"
        except BaseException:
            print(log.read_text(errors="replace")[-4000:])  # shown by pytest on failure
            raise
        finally:
            stop_process(proc, timeout=10)


def _drive(ctx: Any, base: str, sim: SimulatorProcess) -> None:
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()
    page.goto(base)

    # The start form: the plugin's options are there; the key input is a blank password.
    page.get_by_role("button", name="Custom parameters").click()
    for name in PLUGIN_OPTIONS:
        assert page.locator(f"[name={name}]").is_visible(), f"option {name} not in the form"
    for name in PATH_OPTIONS:
        assert page.locator(f"[name={name}]").count() == 0, f"path option {name} in the form"
    assert page.locator("input[name=stream]").is_checked()  # --stream on the command line
    key = page.locator("input[name=apiKey]")
    assert key.get_attribute("type") == "password"
    assert key.input_value() == "" and not key.get_attribute("value")
    assert LEAK not in page.content()
    page.fill("input[name=userCount]", "4")
    page.fill("input[name=spawnRate]", "4")
    page.fill("input[name=host]", sim.url)
    page.get_by_role("button", name="Start").click()

    # Live: the LLM tab's request count grows while the test runs.
    page.get_by_role("tab", name="LLM").click()

    def requests_ok() -> int:
        return int(_tab_rows(page).get("Requests (ok)") or 0)

    first = _poll(page, requests_ok, 15, "a first request in the LLM tab")
    assert _tab_rows(page)["Status"] == "live"
    _poll(page, lambda: requests_ok() > first, 10, "the LLM tab's request count to grow")
    assert LEAK not in page.content()

    # Stop: the tab keeps the final figures, the same as /llm/summary.json and the CSV.
    page.get_by_role("button", name="Stop").click()
    rows = _poll(
        page,
        lambda: (r := _tab_rows(page)).get("Status") == "final" and r,
        15,
        "the final summary in the LLM tab",
    )
    summary = json.loads(_get(base + "llm/summary.json"))
    assert summary["mode"] == "streaming" and summary["failures"] == 0
    assert int(rows["Requests (ok)"]) == summary["requests"] > first
    assert summary["requests"] <= sim.stats()["completed"]
    assert summary["average_follow_tokens"] == 39.0  # 40 tokens, the first one is not "follow"
    for label, key_name in SEED_ROWS.items():
        assert rows[label] == f"{summary[key_name]:.2f}", label
    assert rows["TTFT (ms)"] == str(summary["ttft_ms"]["count"])
    link = page.locator("a.llm-users-link")  # the /llm cell is a real link
    assert link.get_attribute("href") == "/llm" and link.inner_text().startswith("open /llm")
    _shot(page, "webui-llm-tab.png", full_page=True)
    table = dict(csv.reader(io.StringIO(_get(base + "llm/summary.csv"))))
    assert table["requests"] == str(summary["requests"])
    assert float(table["ttft_ms.p99"]) == summary["ttft_ms"]["p99"]
    assert LEAK not in page.content()

    # The /llm page: the seed's summary lines, final, and a chart drawn.
    page.goto(base + "llm")
    page.wait_for_function("document.getElementById('status').textContent === 'final'")
    seed = page.locator("#seed").inner_text()
    ttft = summary["average_first_token_latency_ms"]
    assert f"Average First token latency: {float(ttft)} ms" in seed
    assert f"Average follow tokens: {float(summary['average_follow_tokens'])}" in seed
    _check_charts(page, summary)
    assert LEAK not in page.content()


def _check_charts(page: Any, summary: dict[str, Any]) -> None:
    """The uPlot charts hold the run's points; latencies lie within the run's own range."""
    page.wait_for_function(
        "window.llmCharts.length === 4 && window.llmCharts[0].data[0].length > 0"
    )
    charts = page.evaluate(
        """() => window.llmCharts.map(c => ({title: c.spec.title,
            fields: c.spec.series.map(s => s[0]), data: c.data,
            drawn: c.root.querySelectorAll('canvas').length}))"""
    )
    assert [c["title"].split()[0] for c in charts] == ["TTFT", "ITL", "Output", "Users,"]
    for c in charts:
        assert c["drawn"] == 1, c["title"]
        n = len(c["data"][0])
        assert n > 0 and all(len(col) == n for col in c["data"][1:]), c["title"]
    values = {f: col for c in charts for f, col in zip(c["fields"], c["data"][1:], strict=True)}
    ttft = [v for v in values["ttft_p50_ms"] + values["ttft_p99_ms"] if v is not None]
    assert ttft and all(0 < v <= summary["ttft_ms"]["max"] for v in ttft)
    itl = [v for v in values["itl_p99_ms"] if v is not None]
    assert itl and all(0 <= v <= summary["itl_ms"]["max"] for v in itl)
    assert max(values["output_tokens_per_s"]) > 0 and max(values["users"]) == 4
    assert not any(values["failures_per_s"])  # the run had no failures


def test_llm_page_charts_the_servers_series(tmp_path: Path) -> None:
    """A web UI run on a simulator serving /metrics: the /llm page adds the server's charts,
    their points are the scrapes' (within the simulator's cap), on the client's time range;
    the plugin's own /metrics is served in the Prometheus text format."""
    chromium = require_browser()
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with SimulatorProcess(ttft_ms=40, itl_ms=10, output_tokens=30, max_running=2) as sim:
        cmd = locust_cmd("--web-host", "127.0.0.1", "--web-port", str(port), "--stream",
                         "--host", sim.url, "--autostart", "-u", "4", "-r", "4")  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, env=env, cwd=ROOT)  # fmt: skip
        try:
            _wait_http(base, proc, timeout=20)
            with chromium_context(chromium, tmp_path) as ctx:
                page = ctx.new_page()
                page.goto(base + "llm")
                page.wait_for_function(
                    "window.llmServerCharts.length === 2 && "
                    "window.llmServerCharts[1].data[0].length > 3 && "
                    "window.llmCharts[0].data[0].length > 1",
                    timeout=30_000,
                )
                charts = page.evaluate(
                    """() => [...window.llmCharts, ...window.llmServerCharts].map(c => ({
                        title: c.spec.title, fields: c.spec.series.map(s => s[0]),
                        data: c.data, x: [c.scales.x.min, c.scales.x.max]}))"""
                )
            state = json.loads(_get(base + "llm/state.json"))
            metrics = _get(base + "metrics")
        finally:
            stop_process(proc, timeout=10)
    assert [c["title"].split(":")[0] for c in charts[4:]] == ["TTFT", "Server"]
    srv = charts[5]
    running = [v for v in srv["data"][1] if v is not None]
    assert running and max(running) <= 2 and max(running) >= 1  # the simulator's cap
    assert all(c["x"] == charts[4]["x"] for c in charts)  # one time range for every chart
    assert len(state["server"]["t"]) >= 4 and max(state["server"]["running"]) <= 2
    assert "# TYPE llm_users_ttft_seconds histogram" in metrics


SHOTS_ENV = "LLM_USERS_SCREENSHOTS"  # a folder: the form and tab screenshots of the docs


def _shot(page: Any, name: str, full_page: bool = False) -> None:
    folder = os.environ.get(SHOTS_ENV)
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=full_page)


@pytest.mark.timeout(60)
def test_form_refuses_bad_values_and_tab_says_why_a_start_stopped(tmp_path: Path) -> None:
    """``abc`` in Max Tokens: the command line's one-line message in the page, no start. A bad
    --tokenizer: the run that starts and stops at once says why in the LLM tab."""
    chromium = require_browser()
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    missing = str(tmp_path / "no-such-tokenizer")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    with SimulatorProcess(ttft_ms=20, itl_ms=5, output_tokens=8) as sim:
        cmd = locust_cmd("--web-host", "127.0.0.1", "--web-port", str(port), "--host", sim.url,
                         "--tokenizer", missing)  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, env=env, cwd=ROOT)  # fmt: skip
        try:
            _wait_http(base, proc, timeout=20)
            with chromium_context(
                chromium, tmp_path, viewport={"width": 1200, "height": 1000}
            ) as ctx:
                ctx.set_default_timeout(10_000)
                page = ctx.new_page()
                page.goto(base)
                page.get_by_role("button", name="Custom parameters").click()
                # the request's options first, in this order, then --help's groups
                names = page.evaluate(
                    """() => [...document.querySelectorAll('form [name]')]
                        .map(e => e.getAttribute('name'))"""
                )
                first = ["stream", "maxTokens", "model", "promptType", "endpoint", "apiKey"]
                assert [n for n in names if n in first] == first
                page.locator("[name=endpoint]").scroll_into_view_if_needed()
                _shot(page, "webui-form.png")
                page.fill("input[name=maxTokens]", "abc")
                page.get_by_role("button", name="Start").click()
                message = "--max-tokens must be a whole number, got 'abc'"
                page.get_by_text(message).wait_for()
                assert "unknown error" not in page.content()
                _shot(page, "webui-form-error.png")
                assert sim.stats()["completed"] == 0

                page.fill("input[name=maxTokens]", "16")
                page.get_by_role("button", name="Start").click()
                page.get_by_role("tab", name="LLM").click()
                rows = _poll(page, lambda: (r := _tab_rows(page)).get("Setup error") and r,
                             15, "the setup error in the LLM tab")  # fmt: skip
                assert rows["Setup error"].startswith(f"--tokenizer folder {missing!r}")
                _poll(page, lambda: json.loads(_get(base + "stats/requests"))["state"]
                      == "stopped", 10, "the run to stop")  # fmt: skip
                page.get_by_text("STOPPED").wait_for()
                _shot(page, "webui-setup-error.png")
            stats = json.loads(_get(base + "stats/requests"))
            assert stats["state"] == "stopped" and sim.stats()["completed"] == 0
        finally:
            stop_process(proc, timeout=10)
