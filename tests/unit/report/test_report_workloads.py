"""The workloads' figures (warm-up, conversations per turn, prefix cache, workload) in the
HTML report and the web tab, rendered from a hand-made summary."""

from __future__ import annotations

import re
from typing import Any

from llm_users.measure.figures import lookup
from llm_users.report.html import render_html_report
from llm_users.webui.tab import table_rows


def _dist(count: int, mean: float) -> dict[str, Any]:
    return {"count": count, "mean": mean, "p50": mean - 1, "p90": mean + 1, "p95": mean + 2,
            "p99": mean + 3, "max": mean + 4}  # fmt: skip


def summary(**over: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "mode": "streaming", "endpoint": "responses", "model": "m", "host": "http://h",
        "workload": "synthetic prompts (64 tokens), conversations of 2 turns",
        "concurrency": 3, "requests": 17, "failures": 1, "failures_by_kind": {"http_500": 1},
        "failure_examples": {"http_500": "boom"}, "duration_s": 4.5, "output_tokens": 170,
        "output_tokens_per_s": 37.7, "requests_per_s": 3.7, "ttft_ms": _dist(17, 41.0),
        "warmup": {"requests": 7, "failures": 2, "failures_by_kind": {}},
        "conversations": {"completed": 8, "truncated_requests": 5, "max_context_tokens": 300,
                          "history": "server"},
        "turns": [
            {"turn": 1, "requests": 9, "failures": 0,
             "ttft_ms": {"mean": 123.25, "p50": 120.5, "p99": 199.75},
             "e2e_ms": {"mean": 400.0, "p50": 387.5, "p99": 500.0}, "prompt_tokens_mean": 64.0},
            {"turn": 2, "requests": 8, "failures": 1,
             "ttft_ms": {"mean": 56.75, "p50": 54.25, "p99": 88.5},
             "e2e_ms": {"mean": 300.0, "p50": 311.25, "p99": 333.0},
             "prompt_tokens_mean": 171.5},
        ],
        "prefix_cache": {"hit_rate_percent": 42.3, "cached_tokens": 1234, "prompt_tokens": 2917,
                         "requests_reported": 17, "of": 17, "mostly_cached_requests": 6,
                         "reported_by_server": True},
        "prefix_cache_hit_rate": 42.3,
        "ttft_cached_ms": _dist(6, 33.5), "ttft_uncached_ms": _dist(11, 77.5),
    }  # fmt: skip
    s.update(over)
    return s


def _section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert m, f"no section {sid}"
    return m[1]


def test_lookup_reads_dotted_keys() -> None:
    s = summary()
    assert lookup(s, "warmup.requests") == 7 and lookup(s, "requests") == 17
    assert lookup(s, "conversations.nothing") is None and lookup({}, "a.b", "x") == "x"


def test_html_report_shows_warmup_turns_cache_and_workload() -> None:
    page = render_html_report(summary(), {}, [])
    header = page.split("</header>")[0]
    assert "responses" in header and "conversations of 2 turns" in header
    assert re.search(r'id="warmup">Warm-up: 7 requests \(2 failed\)[^<]*excluded', page)
    conv = _section(page, "conversations")
    assert re.search(r'data-key="conversations.completed"[^>]*>8<', conv)
    assert re.search(r'data-key="conversations.truncated_requests"[^>]*>5<', conv)
    assert "--max-context-tokens 300" in conv
    rows = dict(re.findall(r'<tr data-turn="(\d+)">(.*?)</tr>', conv, re.S))
    assert set(rows) == {"1", "2"}
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>.*?</td>", rows["2"])]
    # requests, failures, TTFT mean/p50/p99, E2E p50, prompt tokens mean
    assert cells == ["8", "1", "56.8", "54.2", "88.5", "311.2", "171.5"]
    assert 'data-key="ttft_ms.p99" data-value="199.75"' in rows["1"]
    cache = _section(page, "prefix-cache")
    assert re.search(r'data-key="prefix_cache.hit_rate_percent"[^>]*>42.3<', cache)
    assert ">1,234<" in cache and ">2,917<" in cache
    assert 'data-key="ttft_cached_ms.mean" data-value="33.5"' in cache
    assert 'data-key="ttft_uncached_ms.p99" data-value="80.5"' in cache


def test_html_report_says_when_the_server_does_not_report_the_cache() -> None:
    pc = {"hit_rate_percent": None, "cached_tokens": None, "prompt_tokens": None,
          "requests_reported": 0, "of": 17, "mostly_cached_requests": None,
          "reported_by_server": False}  # fmt: skip
    s = summary(prefix_cache=pc, prefix_cache_hit_rate="not reported by the server")
    del s["ttft_cached_ms"], s["ttft_uncached_ms"]
    cache = _section(render_html_report(s, {}, []), "prefix-cache")
    assert "not reported by the server" in cache and "hit_rate_percent" not in cache


def test_html_report_without_the_workloads_has_none_of_their_sections() -> None:
    s = summary()
    for key in ("warmup", "conversations", "turns", "prefix_cache", "workload"):
        del s[key]
    page = render_html_report(s, {}, [])
    for sid in ('id="warmup"', 'id="conversations"', 'id="prefix-cache"'):
        assert sid not in page


def test_web_tab_rows_show_warmup_conversations_and_cache() -> None:
    rows = {r["figure"]: r["value"] for r in table_rows(summary(), "final")}
    assert rows["Warm-up requests (excluded)"] == "7"
    assert rows["Conversations completed"] == "8"
    assert rows["Prefix cache hit rate (%)"] == "42.3"
    s = summary(prefix_cache_hit_rate="not reported by the server")
    rows = {r["figure"]: r["value"] for r in table_rows(s, "final")}
    assert rows["Prefix cache hit rate (%)"] == "not reported by the server"
    s = summary()
    del s["warmup"], s["conversations"]
    names = {r["figure"] for r in table_rows(s, "final")}
    assert not names & {"Warm-up requests (excluded)", "Conversations completed"}
