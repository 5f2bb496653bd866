"""The HTML report: parsed back with html.parser, and rendered by headless Chromium if present."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from llm_users.measure.aggregate import Aggregate
from llm_users.measure.histogram import Histogram
from llm_users.measure.per_request import RequestResult
from llm_users.report.html import display_bins, render_html_report, write_html_report
from llm_users.report.summary import RunInfo, summary_dict

BASE = 1_700_000_000.0
EVIL = '<script>alert("pwned")</script> & <img src=x onerror=alert(1)>'
CHROMIUM = "/usr/bin/chromium"
SWEEP = [
    {"step": i, "users": u, "requests": 50 * u, "output_tokens_per_s": 90.0 * u**0.8,
     "requests_per_s": 0.9 * u, "ttft_p50_ms": 100.0 + 3 * u, "ttft_p99_ms": 150.0 + u * u,
     "tpot_p50_ms": 20.0 + u / 4, "e2e_p99_ms": 400.0 + 20 * u}
    for i, u in enumerate((1, 2, 4, 8, 16))
]  # fmt: skip


# -- synthetic runs ------------------------------------------------------------------------


def streaming_run() -> tuple[dict[str, Any], Aggregate]:
    """20 streamed requests (TTFT 100..119 ms, 9 gaps of 20 ms, 10 tokens) and 3 failures."""
    agg = Aggregate()
    for i in range(20):
        ttft = 100.0 + i
        agg.add(
            RequestResult(
                endpoint="chat", stream=True, ok=True, start_wall=BASE + i * 0.5,
                e2e_ms=ttft + 180.0, ttft_ms=ttft, ttfc_ms=ttft, follow_latency_ms=180.0,
                follow_tokens=9, follow_source="usage", output_tokens=10, output_source="usage",
                tpot_ms=20.0, itl_ms=[20.0] * 9, token_events=10, slo_met=ttft < 110,
            )
        )  # fmt: skip
    for i, (kind, msg) in enumerate((("http_500", EVIL), ("http_500", "second"), ("timeout", "t"))):
        agg.add(
            RequestResult(
                endpoint="chat", stream=True, ok=False, start_wall=BASE + 3 + i,
                e2e_ms=50.0, status=500, failure=kind, message=msg,
            )
        )  # fmt: skip
    info = RunInfo(
        mode="streaming", concurrency=4, model="evil<b>model</b>", host="http://127.0.0.1:1",
        extra={"api_key": "sk-SECRET-never-shown", "notes": ["a note & more"],
               "slo": {"ttft_ms": 110.0}, "slo_target": 90.0},
    )  # fmt: skip
    return summary_dict(agg, info), agg


def non_streaming_run() -> tuple[dict[str, Any], Aggregate]:
    """10 requests, latency 500..590 ms, 60 total and 50 output tokens each."""
    agg = Aggregate()
    for i in range(10):
        agg.add(
            RequestResult(
                endpoint="completions", stream=False, ok=True, start_wall=BASE + i,
                e2e_ms=500.0 + 10 * i, output_tokens=50, output_source="usage",
                prompt_tokens=10, total_tokens=60,
            )
        )  # fmt: skip
    info = RunInfo(mode="non-streaming", concurrency=2, endpoint="completions", model="m")
    return summary_dict(agg, info), agg


# -- parsing -------------------------------------------------------------------------------


class Page(HTMLParser):
    """What the tests look at: tags, URL attributes, numeric cells, failure rows, text."""

    URL_ATTRS = {"src", "href", "xlink:href", "srcset", "action", "poster", "data", "background"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: dict[str, int] = {}
        self.urls: list[str] = []
        self.ids: set[str] = set()
        self.cells: dict[str, tuple[str, str | None]] = {}  # data-key -> (text, data-value)
        self.failures: dict[str, list[str]] = {}  # kind -> cell texts
        self.sweep_rows = 0
        self.texts: list[str] = []
        self.styles: list[str] = []
        self.meta: list[dict[str, str | None]] = []
        self._cell: tuple[str, str | None] | None = None
        self._buf: list[str] = []
        self._kind: str | None = None
        self._stack: list[str] = []
        self._in_sweep_table = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self._stack.append(tag)
        self.urls += [v for k, v in attrs if k in self.URL_ATTRS and v]
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "meta":
            self.meta.append(a)
        if tag == "table" and a.get("class") == "sweep":
            self._in_sweep_table = True
        if tag == "tr" and self._in_sweep_table and "tbody" in self._stack:
            self.sweep_rows += 1
        if tag == "tr" and a.get("data-kind"):
            self._kind = a["data-kind"]
            self.failures[self._kind or ""] = []
        if tag in ("td", "th"):
            self._buf = []
            self._cell = (a["data-key"], a.get("data-value")) if a.get("data-key") else None

    def handle_endtag(self, tag: str) -> None:
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()
        if tag in ("td", "th"):
            text = "".join(self._buf)
            if self._cell is not None and tag == "td":
                key, value = self._cell
                self.cells.setdefault(key, (text, value))
            if self._kind is not None:
                self.failures[self._kind].append(text)
            self._cell = None
        if tag == "tr":
            self._kind = None
        if tag == "table":
            self._in_sweep_table = False

    def handle_data(self, data: str) -> None:
        self._buf.append(data)
        self.texts.append(data)
        if self._stack and self._stack[-1] == "style":
            self.styles.append(data)

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def value(self, key: str) -> float:
        raw = self.cells[key][1]
        assert raw is not None, key
        return float(raw)

    def shown(self, key: str) -> str:
        return self.cells[key][0]


def assert_offline_and_safe(page: Page, raw: str) -> None:
    """No script, no external resource of any kind, and a CSP that forbids both anyway."""
    for tag in ("script", "link", "img", "iframe", "object", "embed", "base", "foreignobject"):
        assert tag not in page.tags, tag
    assert not [u for u in page.urls if not u.startswith("#")], page.urls  # only #id refs
    css = "".join(page.styles)
    assert "@import" not in css and "url(" not in css and "@font-face" not in css
    assert "url(http" not in raw and "<!DOCTYPE svg" not in raw
    csp = [m for m in page.meta if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0].get("content") or "")


# -- the streaming report ------------------------------------------------------------------


@pytest.fixture(scope="module")
def streaming(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    summary, agg = streaming_run()
    path = tmp_path_factory.mktemp("report") / "sub" / "report.html"
    write_html_report(str(path), summary, agg.hist, agg.timeseries())
    return summary, path, path.read_text(encoding="utf-8")


def test_streaming_summary_figures(streaming: tuple[dict[str, Any], Path, str]) -> None:
    summary, _, raw = streaming
    page = Page(raw)
    # totals, by hand
    assert page.shown("requests") == "20" and page.value("requests") == 20
    assert page.shown("failures") == "3"
    assert page.shown("output_tokens") == "200"
    assert page.shown("concurrency") == "4"
    duration = 9.5 + 0.299  # last start + its E2E
    assert page.value("duration_s") == pytest.approx(duration)
    assert page.value("output_tokens_per_s") == pytest.approx(200 / duration)
    assert page.shown("output_tokens_per_s") == f"{200 / duration:,.1f}"
    assert page.value("requests_per_s") == pytest.approx(20 / duration)
    # the seed's averages
    assert page.value("average_first_token_latency_ms") == pytest.approx(109.5)
    assert page.shown("average_first_token_latency_ms") == "109.50"
    assert page.shown("average_follow_latency_ms") == "180.00"
    assert page.shown("average_follow_tokens") == "9.00"
    assert page.value("follow_throughput_tokens_per_s") == pytest.approx(9 / 0.18 * 4)
    # distributions: hand values, and every figure equal to the summary's
    assert page.shown("ttft_ms.count") == "20" and page.shown("itl_ms.count") == "180"
    assert page.shown("ttft_ms.mean") == "109.50"
    assert page.value("ttft_ms.max") == 119.0 and page.value("e2e_ms.max") == 299.0
    assert page.value("itl_ms.p50") == 20.0 and page.value("tpot_ms.p99") == 20.0
    for name in ("ttft_ms", "ttfc_ms", "itl_ms", "tpot_ms", "e2e_ms"):
        for stat in ("count", "mean", "p50", "p90", "p95", "p99", "max"):
            assert page.value(f"{name}.{stat}") == summary[name][stat], (name, stat)
    assert "latency_ms.count" not in page.cells  # the non-streaming row is not shown
    # goodput: TTFT < 110 ms for 10 of the 20
    assert page.shown("goodput.requests_meeting_slo") == "10"
    assert page.shown("goodput.percent") == "50.0"
    assert page.value("goodput.requests_per_s") == pytest.approx(10 / duration)
    assert "SLO: ttft_ms \u2264 110.0 ms; target 90 % of requests." in page.text


def test_streaming_failures_are_escaped(streaming: tuple[dict[str, Any], Path, str]) -> None:
    _, _, raw = streaming
    page = Page(raw)
    assert page.failures["http_500"][1:] == ["2", EVIL]  # count, then the first message
    assert page.failures["timeout"][1:] == ["1", "t"]
    assert "<script>" not in raw and "&lt;script&gt;alert(&quot;pwned&quot;)" in raw
    assert "evil<b>model</b>" in page.text and "b" not in page.tags
    assert "notes" in page.ids and "a note & more" in page.text  # shown on top, escaped
    assert "sk-SECRET" not in raw  # nothing else of extra is dumped
    assert_offline_and_safe(page, raw)


def test_streaming_charts(streaming: tuple[dict[str, Any], Path, str]) -> None:
    _, path, raw = streaming
    page = Page(raw)
    # TTFT, ITL, E2E histograms; latency over time; throughput over time; no sweep
    assert page.tags.get("svg") == 5
    for chart in ("ttft_ms", "itl_ms", "e2e_ms", "latency-time", "throughput-time"):
        assert f"chart-{chart}" in page.ids
    assert "sweep" not in page.ids and "chart-sweep" not in page.ids
    assert raw.startswith("<!DOCTYPE html>") and "<?xml" not in raw
    assert 20_000 < len(raw) < 300_000
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary left


@pytest.fixture(scope="module")
def with_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    summary, agg = streaming_run()
    path = tmp_path_factory.mktemp("sweep") / "report.html"
    write_html_report(str(path), summary, agg.hist, agg.timeseries(), SWEEP, title="T <1>")
    return path


def test_sweep_section_only_with_rows(
    with_sweep: Path, streaming: tuple[dict[str, Any], Path, str]
) -> None:
    raw = with_sweep.read_text(encoding="utf-8")
    page = Page(raw)
    assert page.tags.get("svg") == 6 and {"sweep", "chart-sweep"} <= page.ids
    assert page.sweep_rows == len(SWEEP)
    assert page.value("e2e_p99_ms") == 420.0  # the first row's cell
    assert "T <1>" in page.text and "<1>" not in raw
    assert "(points: users)" in raw
    assert_offline_and_safe(page, raw)
    page = Page(streaming[2])  # the same run without sweep rows
    assert page.tags.get("svg") == 5 and "sweep" not in page.ids


# -- the non-streaming report --------------------------------------------------------------


def test_non_streaming_report(tmp_path: Path) -> None:
    summary, agg = non_streaming_run()
    path = tmp_path / "ns.html"
    rate_sweep = [
        {"step": i, "rate": r, "requests": 10, "output_tokens_per_s": 40.0 * r,
         "requests_per_s": r, "e2e_p99_ms": 500.0 + 100 * r}
        for i, r in enumerate((0.5, 1.0, 2.0))
    ]  # fmt: skip
    write_html_report(str(path), summary, agg.hist, agg.timeseries())
    raw = path.read_text(encoding="utf-8")
    page = Page(raw)
    assert page.shown("requests") == "10" and page.shown("failures") == "0"
    assert page.value("average_latency_ms") == pytest.approx(545.0)
    assert page.shown("average_tokens") == "60.00"
    assert page.value("latency_ms.max") == 590.0 and page.shown("latency_ms.count") == "10"
    assert page.value("latency_ms.p50") == summary["latency_ms"]["p50"]
    assert "ttft_ms.count" not in page.cells
    # latency histogram, latency over time, throughput over time
    assert page.tags.get("svg") == 3 and "chart-latency_ms" in page.ids
    assert "chart-ttft_ms" not in page.ids and "sweep" not in page.ids
    assert "http_500" not in page.failures and "None." in page.text
    assert_offline_and_safe(page, raw)
    page = Page(render_html_report(summary, agg.hist, agg.timeseries(), sweep=rate_sweep))
    assert page.tags.get("svg") == 4 and page.sweep_rows == 3  # E2E panel only: no TTFT
    assert "req/s" in page.text


def test_only_failures_and_nothing_at_all() -> None:
    agg = Aggregate()
    agg.add(RequestResult("chat", True, False, BASE, 5.0, failure="connect", message="refused"))
    summary = summary_dict(agg, RunInfo(mode="streaming", concurrency=1))
    page = Page(render_html_report(summary, agg.hist, agg.timeseries()))
    assert page.tags.get("svg") == 1  # requests over time only
    assert page.failures["connect"][1:] == ["1", "refused"]
    assert "no samples" in page.text
    empty = Aggregate()
    summary = summary_dict(empty, RunInfo(mode="non-streaming", concurrency=1))
    page = Page(render_html_report(summary, empty.hist, empty.timeseries()))
    assert "svg" not in page.tags and "No per-second data." in page.text


@pytest.mark.parametrize(
    ("ttft_ms", "itl_ms"),
    [
        (0.0, [0.0] * 9),  # a buffering proxy: every token at once, all figures 0
        (5.0, [5.0] * 9),  # constant
        (0.0, [0.0, 1e-9, 0.0]),  # zero and a spread below the 1 us resolution
        (0.0, []),  # one token each: no ITL at all
    ],
)
def test_zero_constant_and_empty_distributions_are_drawn(ttft_ms: float, itl_ms: list[float],
                                                          tmp_path: Path) -> None:  # fmt: skip
    agg = Aggregate()
    for _ in range(20):
        agg.add(
            RequestResult(
                endpoint="chat", stream=True, ok=True, start_wall=BASE, e2e_ms=ttft_ms,
                ttft_ms=ttft_ms, ttfc_ms=ttft_ms, follow_latency_ms=0.0, follow_tokens=0,
                follow_source="usage", output_tokens=1, output_source="usage", tpot_ms=None,
                itl_ms=list(itl_ms), token_events=1 + len(itl_ms),
            )
        )  # fmt: skip
    summary = summary_dict(agg, RunInfo(mode="streaming", concurrency=1))
    path = tmp_path / "r.html"
    write_html_report(str(path), summary, agg.hist, agg.timeseries())
    page = Page(path.read_text(encoding="utf-8"))
    assert page.tags.get("svg", 0) >= 2  # TTFT's histogram and the time series at least
    assert f"p50 {ttft_ms:,.1f} ms" in page.text


def test_long_runs_are_grouped_into_fewer_points() -> None:
    summary, agg = non_streaming_run()
    rows = [
        {"t": 1_700_000_000 + s, "requests": 2, "failures": 0, "output_tokens_per_s": 100,
         "ttft_p50_ms": None, "ttft_p99_ms": None, "e2e_p50_ms": 500.0,
         "e2e_p99_ms": 900.0 if s == 1234 else 600.0}
        for s in range(3600)
    ]  # fmt: skip
    raw = render_html_report(summary, agg.hist, rows)
    page = Page(raw)
    assert "Each point is 10 s" in page.text and "per 10 s" in page.text
    assert len(raw) < 150_000


# -- histogram rebinning -------------------------------------------------------------------


def hist_of(values: list[float]) -> Histogram:
    h = Histogram()
    h.record_many(values)
    return h


def test_display_bins_conserve_counts_and_choose_the_axis() -> None:
    wide = hist_of([0.0, 0.004, *[20.0 + i / 10 for i in range(500)], 2500.0])  # 0 .. 2.5 s
    edges, counts, log = display_bins(wide) or ([], [], False)
    assert log and len(counts) == 60 and len(edges) == 61
    assert sum(counts) == wide.count
    assert edges[-1] == pytest.approx(2500.0)
    assert 0.001 < edges[0] < 0.005 < edges[1]  # no bin narrower than the 1 us resolution
    assert edges[1] - edges[0] >= 0.001 * 0.99
    assert counts[0] == 2 and counts[-1] == 1  # 0 ms clamps into the first bin (with 4 us)
    narrow = hist_of([100.0 + i for i in range(50)])  # 100 .. 149 ms: linear
    edges, counts, log = display_bins(narrow) or ([], [], True)
    assert not log and sum(counts) == 50 and edges[0] == 100.0 and edges[-1] == 149.0
    one = hist_of([42.0, 42.0])
    edges, counts, log = display_bins(one) or ([], [], True)
    assert not log and sum(counts) == 2 and edges[0] < 42.0 < edges[-1]
    assert display_bins(Histogram()) is None


# -- a real browser ------------------------------------------------------------------------


@pytest.mark.browser
def test_chromium_renders_the_report(with_sweep: Path, tmp_path: Path) -> None:
    report = with_sweep
    page = Page(report.read_text(encoding="utf-8"))
    assert page.tags.get("svg") == 6  # checked whether or not a browser is here
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        pytest.skip(f"{CHROMIUM} is not installed (the parsed checks above ran)")
    png = tmp_path / "shot.png"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        "--no-first-run", "--disable-extensions", "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,3000",
        f"--screenshot={png}", report.as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=60, check=False, cwd=tmp_path)
    assert png.exists(), "chromium wrote no screenshot"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 3000)
    from PIL import Image  # matplotlib's own dependency

    with Image.open(png) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # charts drawn, not a blank page


def test_the_capacity_search_section_charts_every_probe(tmp_path: Path) -> None:
    from llm_users.measure.capacity import Probe

    summary, agg = streaming_run()
    probes = []
    for load, met, n, passed in ((1, 20, 20, True), (2, 20, 20, True), (4, 3, 20, False),
                                 (3, 21, 21, True)):  # fmt: skip
        p = Probe(load=load, met=met, n=n, passed=passed, stopped="decided")
        p.figures = {"ttft_p99_ms": 20.0 * load, "goodput_requests_per_s": 5.0 * load}
        probes.append(p.to_dict())
    summary["search"] = {
        "of": "users", "slo": {"ttft_ms": 45.0}, "slo_target_percent": 80.0,
        "probes": probes, "highest_passing": probes[3], "lowest_failing": probes[2],
    }  # fmt: skip
    path = tmp_path / "r.html"
    write_html_report(str(path), summary, agg.hist, agg.timeseries())
    raw = path.read_text(encoding="utf-8")
    page = Page(raw)
    assert '<section id="search">' in raw and 'id="chart-search"' in raw
    assert "Highest load meeting the SLO: 3" in raw
    section = raw.split('<section id="search">')[1].split("</section>")[0]
    assert section.count("<tr>") == 5  # the header and one row per probe
    assert "<svg" in section and "SLO attainment vs load" in section
    assert "TTFT p99 vs load" in section
    assert not [u for u in page.urls if not u.startswith("#")]
