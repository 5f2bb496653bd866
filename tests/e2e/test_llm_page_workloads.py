"""The /llm page in a browser, fed a summary with conversations, a warm-up and the prefix
cache: the page's own script draws the per-turn table and the figures' rows."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from llm_users.measure.figures import registry_json
from llm_users.webui.tab import PAGE
from tests.browser import require_browser
from tests.unit.report.test_report_workloads import summary

BASE = "http://llm.test/"


def _table(page: Any, sel: str) -> list[list[str]]:
    return page.evaluate(
        f"""() => [...document.querySelectorAll('{sel} tr')]
            .map(r => [...r.cells].map(c => c.textContent))"""
    )


@pytest.mark.browser
@pytest.mark.timeout(60)
def test_llm_page_shows_turns_warmup_conversations_and_cache(tmp_path: Path) -> None:
    chromium = require_browser()
    from playwright.sync_api import sync_playwright

    state = {"status": "final", "locust_state": "stopped", "summary": summary(),
             "seed_lines": [], "series": {}, "server": None}  # fmt: skip
    bodies = {
        "llm": (PAGE.read_bytes(), "text/html"),
        "llm/state.json": (json.dumps(state).encode(), "application/json"),
        "llm/figures.json": (json.dumps(registry_json()).encode(), "application/json"),
    }

    def serve(route: Any) -> None:
        path = route.request.url.removeprefix(BASE).split("?")[0]
        if path in bodies:
            body, ctype = bodies[path]
            route.fulfill(status=200, body=body, content_type=ctype)
        else:
            route.fulfill(status=404, body=b"")

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            tempfile.mkdtemp(dir=tmp_path), executable_path=chromium, headless=True,
            args=["--no-sandbox", "--disable-gpu"],
        )  # fmt: skip
        try:
            page = ctx.new_page()
            page.route("**/*", serve)
            page.goto(BASE + "llm")
            page.wait_for_function("document.querySelectorAll('#turns tr').length === 3")
            turns = _table(page, "#turns")
            # the page prints whole numbers as integers (64.0 is 64 in JS)
            want = [["1", "9", "0", "123.25", "120.50", "199.75", "387.50", "64"],
                    ["2", "8", "1", "56.75", "54.25", "88.50", "311.25", "171.5"]]  # fmt: skip
            assert turns[1:] == want
            assert page.is_visible("#turns")
            rows = dict(r[:2] for r in _table(page, "#figures")[1:])
            assert rows["Warm-up requests (excluded)"] == "7"
            assert rows["Conversations completed"] == "8"
            assert rows["Prefix cache hit rate (%)"] == "42.3"
            assert "conversations of 2 turns" in page.inner_text("#run")
        finally:
            ctx.close()
