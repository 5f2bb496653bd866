"""One self-contained HTML report of a run: the summary, histograms, time series, a sweep.

The file opens offline: no script, no external stylesheet, font or image; the charts are
matplotlib SVG inlined into the page (text kept as ``<text>``, so it stays small and
searchable). A Content-Security-Policy meta tag forbids scripts and network fetches as a
second line of defence.

One page, rendered top to bottom by the functions below in the order it reads: it reads better
whole than split between a charts module and a page module.

Every string that comes from the run (model, host, failure messages -- which are server
output) is HTML-escaped here; no template engine ever sees the data, and no untrusted
string is drawn in a chart (matplotlib would parse ``$...$`` as mathtext). The inputs carry
no API key, and nothing here dumps options.

Histograms are rebinned from the exact log-linear :class:`~llm_users.measure.histogram.Histogram`
buckets (0.1 % wide) into :data:`DISPLAY_BINS` display bins. Latencies are right-skewed and
often span decades (ITL: sub-millisecond gaps for events batched in one read, tens of ms
for the bulk, seconds for stalls), so when the samples span more than a factor of
:data:`LOG_SPAN` the display bins are log-spaced (equal relative width, matching the source
buckets' constant relative resolution, so the bulk and the tail are both readable). A
narrow distribution (within a factor of 10) is drawn on a linear axis, which is easier to
read there and on which a log axis would show no labelled decade at all. On a log axis no
bin is narrower than the source's 1 us resolution (that would draw a comb of empty bins),
so the first bin also holds anything below it (zero gaps included); counts are conserved.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..measure.figures import MISSING, by_key, fmt_grouped, lookup, of_kind
from ..measure.histogram import PERCENTILES, Histogram
from .writers import write_bytes

if TYPE_CHECKING:  # matplotlib is imported lazily: only rendering a report pays for it
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DISPLAY_BINS", "LOG_SPAN", "display_bins", "render_html_report", "write_html_report"]

DISPLAY_BINS = 60
LOG_SPAN = 10.0  # hi / lo above which a histogram is drawn on a log axis
_MIN_LOG_MS = 0.001  # 1 us, the histogram's resolution: no log bin is narrower
_EXAMPLE_CHARS = 500  # failure messages are cut to this many characters
_SMOOTH_S = 10  # trailing mean window of the throughput chart, seconds
_MAX_POINTS = 900  # per-second points drawn as they are up to this many seconds ...
_TARGET_POINTS = 600  # ... beyond, grouped into at most this many points of k seconds
_ROUND_STEPS = (2, 3, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)

# sweep table: key, header, decimals (None: integer); present columns only, in this order
_SWEEP_COLUMNS = (
    ("step", "Step", None),
    ("users", "Users", None),
    ("rate", "Rate (req/s)", 2),
    ("duration_s", "Duration (s)", 1),
    ("requests", "Requests", None),
    ("failures", "Failures", None),
    ("requests_per_s", "Requests/s", 3),
    ("output_tokens_per_s", "Output tokens/s", 1),
    ("ttft_p50_ms", "TTFT p50 (ms)", 1),
    ("ttft_p99_ms", "TTFT p99 (ms)", 1),
    ("tpot_p50_ms", "TPOT p50 (ms)", 2),
    ("tpot_p99_ms", "TPOT p99 (ms)", 2),
    ("itl_p50_ms", "ITL p50 (ms)", 2),
    ("itl_p99_ms", "ITL p99 (ms)", 2),
    ("e2e_p50_ms", "E2E p50 (ms)", 1),
    ("e2e_p99_ms", "E2E p99 (ms)", 1),
)

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  margin: 0 auto; max-width: 1200px; padding: 16px 24px 48px; color: #1d2330; background: #fff; }
h1 { font-size: 22px; margin: 8px 0 2px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
.sub { color: #5a6375; margin: 0 0 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(330px, 1fr));
  gap: 12px 28px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 4px 0 8px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eceff4; text-align: right;
  vertical-align: top; }
th { font-weight: 600; background: #f5f7fa; }
tbody th { text-align: left; background: none; font-weight: 500; }
td.text { text-align: left; white-space: pre-wrap; word-break: break-word; max-width: 640px;
  font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
figure { margin: 8px 0 16px; }
figure svg { width: 100%; height: auto; display: block; }
figcaption, .note { color: #5a6375; font-size: 12.5px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr));
  gap: 8px 24px; }
.bad { color: #b3261e; }
ul.notes { background: #fff6e0; border: 1px solid #f0d48a; border-radius: 4px;
  padding: 6px 12px 6px 28px; margin: 4px 0 12px; }
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


# -- formatting ----------------------------------------------------------------------------


def _e(s: Any) -> str:
    """HTML-escape anything, quotes included (safe in text and attribute values)."""
    return html.escape(str(s), quote=True)


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _num(x: Any, digits: int | None = 2) -> str:
    """A number for people (the console table's style), escaped: a value may be text."""
    return _e(fmt_grouped(x, digits))


def _num_td(x: Any, digits: int | None = 2, key: str | None = None) -> str:
    """A numeric cell: the rounded figure shown, the exact value in ``data-value``."""
    attrs = f' data-key="{_e(key)}"' if key else ""
    v = _finite(x)
    if v is not None:
        attrs += f' data-value="{_e(repr(x))}"'
    return f"<td{attrs}>{_num(x, digits)}</td>"


def _kv_table(rows: Iterable[tuple[str, str, Any, int | None]], cls: str = "kv") -> str:
    out = [f'<table class="{cls}"><tbody>']
    for key, label, value, digits in rows:
        out.append(f"<tr><th>{_e(label)}</th>{_num_td(value, digits, key)}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _text_kv_table(rows: Iterable[tuple[str, str, Any]]) -> str:
    out = ['<table class="kv"><tbody>']
    for key, label, value in rows:
        shown = MISSING if value in (None, "") else _e(value)
        out.append(
            f'<tr><th>{_e(label)}</th><td class="text" data-key="{_e(key)}">{shown}</td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


# -- histogram rebinning -------------------------------------------------------------------


def display_bins(
    hist: Histogram, nbins: int = DISPLAY_BINS
) -> tuple[list[float], list[int], bool] | None:
    """Rebin a histogram for display: (edges in ms, counts, log axis?), or None if empty.

    Each source bucket (at most 0.1 % wide, far narrower than a display bin) goes to the
    display bin holding its midpoint, clamped to the exact min and max; counts are
    conserved exactly. See the module docstring for the choice of axis.
    """
    import numpy as np

    if not hist.count or not hist.counts:
        return None
    lo, hi = float(hist.min), float(hist.max)
    buckets = list(hist.buckets())
    mids = np.empty(len(buckets))
    counts = np.empty(len(buckets), dtype=np.int64)
    for j, (b_lo, b_hi, n) in enumerate(buckets):  # [b_lo, b_hi) ms, recorded to whole us
        mids[j] = (b_lo + b_hi - 0.001) / 2.0 if b_hi - b_lo > 0.0015 else b_lo
        counts[j] = n
    mids = np.clip(mids, lo, hi)
    log_lo = max(lo, _MIN_LOG_MS)
    use_log = hi / log_lo > LOG_SPAN if hi > 0 else False
    if use_log:
        for _ in range(4):  # no bin narrower than the source's 1 us: that draws a comb
            ratio = (hi / log_lo) ** (1.0 / nbins)
            log_lo = min(max(log_lo, _MIN_LOG_MS / (ratio - 1.0)), hi / 2)
        edges = np.geomspace(log_lo, hi, nbins + 1)
        mids = np.clip(mids, log_lo, hi)
    else:
        if hi - lo < 1e-9:  # one value (or a 1 us spread): a narrow window around it
            pad = max(abs(lo) * 0.05, 0.001)
            lo, hi = (max(0.0, lo - pad) if lo >= 0 else lo - pad), hi + pad
        edges = np.linspace(lo, hi, nbins + 1)
    binned, _ = np.histogram(mids, bins=edges, weights=counts)
    return edges.tolist(), [int(round(c)) for c in binned], use_log


# -- charts --------------------------------------------------------------------------------

_RC: dict[Any, Any] = {
    "svg.fonttype": "none",  # <text>, not glyph paths: half the size, and searchable
    "svg.hashsalt": "llm-users",  # stable ids: identical defs across inlined charts agree
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.5,
    "axes.grid": True,
    "grid.color": "#e3e7ee",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#9aa3b2",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "legend.fontsize": 8.0,
    "path.simplify": True,
}
_BLUE, _ORANGE, _GREEN, _RED = "#3b6fb6", "#e07b28", "#2e9d5b", "#c63a32"
_PURPLE = "#8e44ad"
_SVG_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.S)
_SVG_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_SVG_PATH = re.compile(r'\bd="[^"]*"')
_SVG_FONTS = "font-family: 'DejaVu Sans', Verdana, sans-serif"
_SVG_DIGITS = re.compile(r"(\d\.\d)\d+")


def _figure(width: float, height: float, rows: int = 1, cols: int = 1) -> tuple[Figure, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, explicitly: never pyplot, never a GUI backend
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _svg(fig: Figure) -> str:
    import io

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = _SVG_PROLOG.sub("", buf.getvalue(), count=1)  # the XML prolog and DOCTYPE (a URL)
    svg = _SVG_METADATA.sub("", svg, count=1)  # RDF metadata (namespace URLs), useless here
    # path data to 0.1 pt (a CSS px is 0.75 pt) on one line: ~40 % smaller time series
    svg = _SVG_PATH.sub(lambda m: _SVG_DIGITS.sub(r"\1", " ".join(m[0].split())), svg)
    # text was laid out with DejaVu Sans (bundled with matplotlib): where a browser lacks it,
    # Verdana (same design lineage, close metrics), then any sans-serif, never the serif default
    svg = svg.replace("font-family: 'DejaVu Sans'", _SVG_FONTS)
    return svg.strip()


def _number_axis(ax: Axes, log: bool, span: float) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if not log:
        return
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_locator(LogLocator(base=10.0))
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0)))
    ax.xaxis.set_minor_formatter(plain if span <= 1000 else NullFormatter())


def _histogram_chart(hist: Histogram, label: str, unit: str) -> str | None:
    binned = display_bins(hist)
    if binned is None:
        return None
    edges, counts, log = binned
    fig, axes = _figure(5.6, 2.9)
    ax = axes[0][0]
    ax.stairs(counts, edges, fill=True, color=_BLUE, alpha=0.85, linewidth=0)
    _number_axis(ax, log, edges[-1] / edges[0] if log else 1.0)  # linear: edges[0] may be 0
    right = edges[-1] * 1.04 if log else edges[-1] + (edges[-1] - edges[0]) * 0.02
    ax.set_xlim(edges[0], right)  # a little room: the max line is not drawn on the frame
    ax.set_ylim(bottom=0)
    marks = [("p50", hist.percentile(50), _GREEN), ("p99", hist.percentile(99), _ORANGE)]
    marks.append(("max", hist.max, _RED))
    for name, v, color in marks:
        if v is not None and math.isfinite(v):
            ax.axvline(v, color=color, linestyle="--", linewidth=1.0, label=f"{name} {v:,.1f} ms")
    fig.legend(loc="outside lower center", ncols=3)  # never over the bars
    ax.set_title(f"{label}: {hist.count:,} {unit}", loc="left")
    ax.set_xlabel(f"ms ({'log' if log else 'linear'} axis, {len(counts)} bins)")
    ax.set_ylabel(unit)
    return _svg(fig)


def _series(rows: Sequence[dict[str, Any]]) -> tuple[list[float], dict[str, list[float]], int]:
    """Rows on a gap-free grid of seconds since the first (latency gaps are NaN), and the
    seconds per point: beyond :data:`_MAX_POINTS` seconds, points of k seconds (counts and
    tokens: their mean rate; p99: the highest per-second p99, so spikes survive; p50: the
    median per-second p50). A chart is ~1000 px wide: more points would only overdraw.
    """
    by_t = {int(r["t"]): r for r in rows if _finite(r.get("t")) is not None}
    t0, t1 = min(by_t), max(by_t)
    n = t1 - t0 + 1
    k = 1
    if n > _MAX_POINTS:
        k = next(
            (c for c in _ROUND_STEPS if n / c <= _TARGET_POINTS), math.ceil(n / _TARGET_POINTS)
        )
    x = [i * k + (k - 1) / 2 for i in range(math.ceil(n / k))]
    out: dict[str, list[float]] = {}
    for key in ("requests", "failures", "output_tokens_per_s"):
        per_s = [_finite(by_t[t].get(key)) or 0.0 if t in by_t else 0.0 for t in range(t0, t1 + 1)]
        out[key] = [sum(per_s[i : i + k]) / len(per_s[i : i + k]) for i in range(0, n, k)]
    for key in ("ttft_p50_ms", "ttft_p99_ms", "e2e_p50_ms", "e2e_p99_ms"):
        vals = [_finite(by_t[t].get(key)) if t in by_t else None for t in range(t0, t1 + 1)]
        pick = max if key.endswith("p99_ms") else _median
        out[key] = []
        for i in range(0, n, k):
            group = [v for v in vals[i : i + k] if v is not None]
            out[key].append(pick(group) if group else math.nan)
    return x, out, k


def _median(values: list[float]) -> float:
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def _trailing_mean(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _per(k: int) -> str:
    return "per second" if k == 1 else f"per {k} s"


def _line_style(x: Sequence[float]) -> dict[str, Any]:
    """Dots too when there are few points: a one-point line would draw nothing."""
    return {"marker": ".", "markersize": 4} if len(x) <= 60 else {}


def _latency_time_chart(
    x: list[float], s: dict[str, list[float]], k: int, streaming: bool
) -> str | None:
    panels = []
    if streaming and any(not math.isnan(v) for v in s["ttft_p99_ms"]):
        panels.append(("TTFT", "ttft"))
    if any(not math.isnan(v) for v in s["e2e_p99_ms"]):
        panels.append(("E2E" if streaming else "Latency (E2E)", "e2e"))
    if not panels:
        return None
    fig, axes = _figure(10.5, 2.4 * len(panels) + 0.4, rows=len(panels))
    dots = _line_style(x)
    for ax_row, (label, key) in zip(axes, panels, strict=True):
        ax = ax_row[0]
        ax.plot(x, s[f"{key}_p50_ms"], color=_BLUE, linewidth=1.1, label="p50", **dots)
        ax.plot(x, s[f"{key}_p99_ms"], color=_ORANGE, linewidth=1.1, label="p99", **dots)
        ax.set_title(f"{label} {_per(k)} (ms)", loc="left")
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        ax.set_xlim(0, max(x[-1], 1))
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2)  # above: not over a line
    axes[-1][0].set_xlabel("seconds since the first request ended")
    return _svg(fig)


def _throughput_time_chart(x: list[float], s: dict[str, list[float]], k: int) -> str:
    fig, axes = _figure(10.5, 4.6, rows=2)
    dots = _line_style(x)
    ax = axes[0][0]
    tokens = s["output_tokens_per_s"]
    ax.plot(x, tokens, color=_BLUE, linewidth=0.8, alpha=0.6, label=_per(k), **dots)
    window = _SMOOTH_S // k
    if window > 1 and len(x) >= 3 * window:
        smooth = _trailing_mean(tokens, window)
        ax.plot(x, smooth, color=_BLUE, linewidth=1.8, label=f"{window * k} s trailing mean")
    ax.set_title("Output tokens/s (tokens of the requests that ended then)", loc="left")
    ax.set_ylabel("tokens/s")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2)
    ax = axes[1][0]
    ax.plot(x, s["requests"], color=_GREEN, linewidth=1.1, label="ok", **dots)
    if any(s["failures"]):
        ax.plot(x, s["failures"], color=_RED, linewidth=1.1, label="failed", **dots)
    ax.set_title("Requests ended per second", loc="left")
    ax.set_ylabel("requests/s")
    ax.set_xlabel("seconds since the first request ended")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2)
    for row in axes:
        row[0].set_ylim(bottom=0)
        row[0].set_xlim(0, max(x[-1], 1))
    return _svg(fig)


def _server_chart(
    x: list[float], s: dict[str, list[float]], k: int, srv: dict[str, Any], start: int
) -> str | None:
    """The server's own series (per scrape) on the client's time axis (seconds since start)."""
    t0 = _finite(srv.get("t0_unix"))
    points = srv.get("series")
    if t0 is None or not isinstance(points, list) or not points:
        return None
    sx = [t0 + float(p.get("t", 0.0)) - start for p in points]

    def col(key: str, scale: float = 1.0) -> list[float]:
        return [v * scale if (v := _finite(p.get(key))) is not None else math.nan for p in points]

    fig, axes = _figure(10.5, 2.2 * 4 + 0.4, rows=4)
    dots, sdots = _line_style(x), _line_style(sx)
    ax = axes[0][0]
    ax.plot(x, s["ttft_p50_ms"], color=_BLUE, linewidth=1.1, label=f"client p50 {_per(k)}", **dots)
    ax.plot(sx, col("ttft_p50_ms"), color=_PURPLE, linewidth=1.1, label="server p50", **sdots)
    ax.plot(sx, col("ttft_mean_ms"), color=_PURPLE, linewidth=0.8, linestyle="--",
            label="server mean", **sdots)  # fmt: skip
    ax.set_title("TTFT: client and server, between scrapes (ms)", loc="left")
    ax.set_ylabel("ms")
    ax = axes[1][0]
    ax.plot(x, s["output_tokens_per_s"], color=_BLUE, linewidth=1.1, label="client", **dots)
    ax.set_title(f"Output tokens/s {_per(k)} (client)", loc="left")
    ax.set_ylabel("tokens/s")
    ax = axes[2][0]
    ax.plot(sx, col("running"), color=_GREEN, linewidth=1.1, label="running", **sdots)
    ax.plot(sx, col("waiting"), color=_ORANGE, linewidth=1.1, label="waiting", **sdots)
    ax.set_title("Server: requests running and waiting", loc="left")
    ax.set_ylabel("requests")
    ax = axes[3][0]
    ax.plot(sx, col("kv_cache_usage", 100.0), color=_PURPLE, linewidth=1.1, label="KV", **sdots)
    ax.set_title("Server: KV-cache usage (%)", loc="left")
    ax.set_ylabel("%")
    ax.set_xlabel("seconds since the first request ended")
    right = max([*x, *sx, 1.0])
    left = min([0.0, *sx])
    for row in axes:
        row[0].set_ylim(bottom=0)
        row[0].set_xlim(left, right)
        row[0].legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=3)
    return _svg(fig)


def _server(summary: dict[str, Any], chart: str | None) -> str:
    """The server's own figures (--server-metrics), or why there are none."""
    srv = summary.get("server")
    if not isinstance(srv, dict):
        return ""
    head = '<section id="server"><h2>Server metrics</h2>'
    if not srv.get("scrapes"):
        why = srv.get("not_available") or "none"
        return f'{head}<p class="note">{_e(srv.get("source") or "")} {_e(why)}</p></section>'
    rows: list[tuple[str, str, Any, int | None]] = [
        ("scrapes", "Scrapes", srv.get("scrapes"), None),
        ("failed_scrapes", "Failed scrapes", srv.get("failed_scrapes"), None),
        ("window_s", "Window (s)", srv.get("window_s"), 1),
    ]
    for key, label in (("ttft_ms", "Server TTFT"), ("queue_time_ms", "Queue time")):
        d = srv.get(key)
        if isinstance(d, dict):
            rows += [
                (f"{key}.{q}", f"{label} {q} (ms)", d.get(q), 1) for q in ("mean", "p50", "p99")
            ]
    for key, label, scale in (("running", "Running", 1.0), ("waiting", "Waiting", 1.0),
                              ("kv_cache_usage", "KV-cache usage (%)", 100.0)):  # fmt: skip
        d = srv.get(key)
        if isinstance(d, dict):
            rows += [
                (f"{key}.{q}", f"{label} {q}", (_finite(d.get(q)) or 0.0) * scale, 2)
                for q in ("mean", "max")
            ]
    hit = srv.get("prefix_cache_hit_rate")
    if isinstance(hit, float):
        rows.append(("prefix_cache_hit_rate", "Prefix-cache hit rate (%)", hit * 100.0, 1))
    src = f'<p class="note">Source: {_e(srv.get("source"))}</p>'
    fig = (
        _figure_html("chart-server-time", chart, "The server's gauges at each scrape and its "
                     "TTFT histogram between scrapes, beside the client's per-second figures.")
        if chart
        else ""
    )  # fmt: skip
    return f"{head}{src}{_kv_table(rows)}{fig}</section>"


def _sweep_knob(rows: Sequence[dict[str, Any]]) -> str:
    """What the sweep varied: "users", "rate" or just "step"."""
    for knob in ("users", "rate"):
        if any(_finite(r.get(knob)) is not None for r in rows):
            return knob
    return "step"


def _sweep_chart(rows: Sequence[dict[str, Any]]) -> str | None:
    tput = [_finite(r.get("output_tokens_per_s")) for r in rows]
    panels = [
        (key, label)
        for key, label in (("ttft", "TTFT"), ("e2e", "E2E"))
        if any(_finite(r.get(f"{key}_p99_ms")) is not None and x is not None
               for r, x in zip(rows, tput, strict=True))
    ]  # fmt: skip
    if not panels:
        return None
    knob = _sweep_knob(rows)
    unit = {"users": "users", "rate": "req/s", "step": "step"}[knob]
    fig, axes = _figure(5.4 * len(panels), 3.6, cols=len(panels))
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        top, right = 0.0, 0.0
        for pct, color, style in (("p99", _ORANGE, "-o"), ("p50", _BLUE, "--.")):
            pts = [
                (x, y, _finite(r.get(knob)))
                for r, x in zip(rows, tput, strict=True)
                if x is not None and (y := _finite(r.get(f"{key}_{pct}_ms"))) is not None
            ]
            if not pts:
                continue
            xs, ys, _names = zip(*pts, strict=True)
            ax.plot(xs, ys, style, color=color, linewidth=1.3, markersize=5, label=pct)
            top, right = max(top, *ys), max(right, *xs)
            if pct != "p99":
                continue
            for i, (xv, yv, v) in enumerate(pts):  # alternate above / below: close points
                if v is not None:
                    ax.annotate(f"{v:g}", (xv, yv), textcoords="offset points",
                                xytext=(-4, 6) if i % 2 == 0 else (5, -11),
                                fontsize=7.5, color="#333a46")  # fmt: skip
        ax.set_title(f"{label} vs output throughput (points: {unit})", loc="left")
        ax.set_xlabel("output tokens/s")
        ax.set_ylabel(f"{label} (ms)")
        ax.set_xlim(0, right * 1.12 or 1.0)
        ax.set_ylim(0, top * 1.15 or 1.0)
        ax.legend(loc="upper left")
    return _svg(fig)


# -- sections ------------------------------------------------------------------------------


def _figure_html(chart_id: str, svg: str, caption: str) -> str:
    return (
        f'<figure class="chart" id="{_e(chart_id)}">{svg}'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _overview(summary: dict[str, Any], start: int | None) -> str:
    started = (
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start)) if start is not None else None
    )
    run = _text_kv_table([
        ("mode", "Mode", summary.get("mode")),
        ("endpoint", "Endpoint", summary.get("endpoint")),
        ("workload", "Workload", summary.get("workload")),
        ("model", "Model", summary.get("model")),
        ("host", "Host", summary.get("host")),
        ("started", "First request ended", started),
    ])  # fmt: skip
    shown = ("concurrency", "duration_s", "requests", "failures", "output_tokens",
              "output_tokens_per_s", "requests_per_s")  # fmt: skip
    rows: list[tuple[str, str, Any, int | None]] = [
        (f.key, f.title_with_unit, summary.get(f.key), f.digits) for f in map(by_key, shown)
    ]
    if _finite(summary.get("request_rate")) is not None:
        rows.insert(1, ("request_rate", "Target rate (req/s)", summary["request_rate"], 3))
    good = summary.get("goodput")
    if isinstance(good, dict):
        rows += [
            ("goodput.requests_meeting_slo", "Requests meeting the SLO",
             good.get("requests_meeting_slo"), None),
            ("goodput.percent", "Meeting the SLO (%)", good.get("percent"), 1),
            ("goodput.requests_per_s", "Goodput (req/s)", good.get("requests_per_s"), 3),
        ]  # fmt: skip
    totals = _kv_table(rows)
    slo = summary.get("slo")
    if isinstance(slo, dict) and slo:
        terms = ", ".join(f"{_e(k)} \u2264 {_num(v, 1)}" for k, v in sorted(slo.items()))
        target = _finite(summary.get("slo_target"))
        goal = f"; target {target:g} % of requests" if target else ""
        totals += f'<p class="note">SLO: {terms} ms{goal}.</p>'
    mode = "streaming" if summary.get("mode") == "streaming" else "non-streaming"
    seed = _kv_table(
        (f.key, f.title_with_unit, summary.get(f.key), f.digits) for f in of_kind("seed", mode)
    )
    return (
        '<section id="overview"><h2>Summary</h2>' + _warmup_line(summary) + '<div class="grid">'
        f"<div><h3>Run</h3>{run}</div><div><h3>Totals</h3>{totals}</div>"
        f"<div><h3>The original benchmark script's figures</h3>{seed}"
        '<p class="note">Mean per-request speed \u00d7 users, as the original script '
        "reports it; the totals give the measured throughput.</p></div>"
        "</div></section>"
    )


def _warmup_line(summary: dict[str, Any]) -> str:
    warm = summary.get("warmup")
    if not isinstance(warm, dict):
        return ""
    return (
        f'<p class="note" id="warmup">Warm-up: {_num(warm.get("requests"), None)} requests '
        f"({_num(warm.get('failures'), None)} failed) sent first and excluded from every "
        "figure in this report.</p>"
    )


def _turns(summary: dict[str, Any]) -> str:
    """Conversations: completed, truncated requests, and one row per turn index."""
    conv = summary.get("conversations")
    if not isinstance(conv, dict):
        return ""
    rows = [
        ("conversations.completed", by_key("conversations.completed").title,
         conv.get("completed"), None),
        ("conversations.truncated_requests", by_key("conversations.truncated_requests").title,
         conv.get("truncated_requests"), None),
    ]  # fmt: skip
    limit = conv.get("max_context_tokens")
    note = f" (--max-context-tokens {_num(limit, None)})" if limit else ""
    cols = (("requests", "Requests", None), ("failures", "Failures", None),
            ("ttft_ms.mean", "TTFT mean (ms)", 1), ("ttft_ms.p50", "TTFT p50 (ms)", 1),
            ("ttft_ms.p99", "TTFT p99 (ms)", 1), ("e2e_ms.p50", "E2E p50 (ms)", 1),
            ("prompt_tokens_mean", "Prompt tokens mean", 1))  # fmt: skip
    head = "<th>Turn</th>" + "".join(f"<th>{_e(h)}</th>" for _, h, _ in cols)
    body = []
    for r in summary.get("turns") or ():
        if not isinstance(r, dict):
            continue
        cells = "".join(_num_td(lookup(r, k), d, k) for k, _, d in cols)
        body.append(f'<tr data-turn="{_e(r.get("turn"))}"><th>{_e(r.get("turn"))}</th>{cells}</tr>')
    table = (
        f'<table class="turns"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        if body
        else '<p class="note">No turn finished.</p>'
    )
    return (
        '<section id="conversations"><h2>Conversations</h2>'
        f"{_kv_table(rows)}"
        f'<p class="note">History sent back: {_e(conv.get("history") or MISSING)}{note}. '
        "A conversation is completed when its last turn succeeded.</p>"
        f"<h3>Per turn</h3>{table}</section>"
    )


def _prefix_cache(summary: dict[str, Any]) -> str:
    """The prefix cache: hit rate (or that the server did not report it), cached vs uncached."""
    pc = summary.get("prefix_cache")
    if not isinstance(pc, dict):
        return ""
    rate = pc.get("hit_rate_percent")
    if _finite(rate) is None:
        head = (
            '<p id="prefix-cache-rate">Prefix cache hit rate: <strong>not reported by the '
            "server</strong> (no response carried usage.prompt_tokens_details.cached_tokens)."
            "</p>"
        )
    else:
        head = _kv_table([
            ("prefix_cache.hit_rate_percent", "Hit rate (cached / prompt tokens, %)", rate, 1),
            ("prefix_cache.cached_tokens", "Cached prompt tokens", pc.get("cached_tokens"), None),
            ("prefix_cache.prompt_tokens", "Prompt tokens", pc.get("prompt_tokens"), None),
            ("prefix_cache.mostly_cached_requests", "Requests >= 50 % cached",
             pc.get("mostly_cached_requests"), None),
            ("prefix_cache.requests_reported", "Requests the server reported on",
             pc.get("requests_reported"), None),
        ])  # fmt: skip
    body = []
    for key in ("ttft_cached_ms", "ttft_uncached_ms"):
        d = summary.get(key)
        if not isinstance(d, dict) or not d.get("count"):
            continue
        f = by_key(key)
        cells = _num_td(d.get("count"), None, f"{key}.count")
        cells += "".join(_num_td(d.get(k), f.digits, f"{key}.{k}") for k in ("mean", "p50", "p99"))
        body.append(f'<tr data-dist="{_e(key)}"><th>{_e(f.title)}</th>{cells}</tr>')
    ttft = (
        '<table class="cache"><thead><tr><th>ms</th><th>count</th><th>mean</th><th>p50</th>'
        f"<th>p99</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
        if body
        else '<p class="note">TTFT cached vs uncached: no streamed request the server '
        "reported on.</p>"
    )
    return f'<section id="prefix-cache"><h2>Prefix cache</h2>{head}{ttft}</section>'


def _distributions(summary: dict[str, Any]) -> str:
    head = "".join(
        f"<th>{h}</th>" for h in ("ms", "count", "mean", *(f"p{p}" for p in PERCENTILES), "max")
    )
    body = []
    for f in of_kind("distribution"):
        name, d = f.key, summary.get(f.key)
        if not isinstance(d, dict) or not d.get("count"):
            continue
        cells = _num_td(d.get("count"), None, f"{name}.count")
        for k in ("mean", *(f"p{p}" for p in PERCENTILES), "max"):
            cells += _num_td(d.get(k), f.digits, f"{name}.{k}")
        body.append(f'<tr data-dist="{_e(name)}"><th>{_e(f.title)}</th>{cells}</tr>')
    if not body:
        return (
            '<section id="distributions"><h2>Latency distributions</h2>'
            '<p class="note">No successful requests.</p></section>'
        )
    return (
        '<section id="distributions"><h2>Latency distributions</h2>'
        f'<table class="dist"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        '</table><p class="note">Nearest-rank percentiles from histograms exact to 0.05 %.'
        "</p>" + _extras(summary) + "</section>"
    )


def _extras(summary: dict[str, Any]) -> str:
    """The few other facts worth a line: token-count check, short outputs, loop lag, notes."""
    lines = []
    src = summary.get("follow_tokens_source") or summary.get("tokens_source")
    if isinstance(src, dict) and src:
        counted = ", ".join(f"{_e(k)} ({_num(v, None)})" for k, v in sorted(src.items()))
        lines.append(f"Tokens counted by: {counted}.")
    chk = summary.get("token_count_check")
    if isinstance(chk, dict) and chk.get("compared"):
        lines.append(
            f"Tokenizer vs usage: mean |diff| {_num(chk.get('mean_abs_diff'))} tokens, "
            f"max {_num(chk.get('max_abs_diff'), None)} over {_num(chk['compared'], None)} "
            "requests."
        )
    short = summary.get("short_outputs")
    if isinstance(short, dict) and short.get("requests"):
        lines.append(
            f"{_num(short['requests'], None)} of {_num(short.get('of'), None)} responses were "
            "shorter than max_tokens."
        )
    lag = summary.get("client_loop_lag_ms")
    if isinstance(lag, dict) and lag:
        lines.append(
            f"Client loop lag (timing uncertainty): p50 {_num(lag.get('p50'))} ms, "
            f"p99 {_num(lag.get('p99'))} ms, max {_num(lag.get('max'))} ms."
        )
    return "".join(f'<p class="note">{line}</p>' for line in lines)


def _notes(summary: dict[str, Any]) -> str:
    """The run's warnings (an abort, a lagging load generator, ...), at the top."""
    notes = summary.get("notes")
    if not isinstance(notes, list | tuple) or not notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in notes)
    return f'<ul class="notes" id="notes">{items}</ul>'


def _failures(summary: dict[str, Any]) -> str:
    by_kind = summary.get("failures_by_kind") or {}
    examples = summary.get("failure_examples") or {}
    if not by_kind:
        return '<section id="failures"><h2>Failures</h2><p class="note">None.</p></section>'
    rows = []
    for kind, n in sorted(by_kind.items(), key=lambda kv: (-(_finite(kv[1]) or 0), str(kv[0]))):
        msg = str(examples.get(kind) or "")
        if len(msg) > _EXAMPLE_CHARS:
            msg = msg[:_EXAMPLE_CHARS] + "\u2026"
        rows.append(
            f'<tr data-kind="{_e(kind)}"><th class="bad">{_e(kind)}</th>'
            f'{_num_td(n, None, "failures_by_kind")}<td class="text">{_e(msg)}</td></tr>'
        )
    return (
        '<section id="failures"><h2>Failures</h2><table class="failures"><thead><tr>'
        "<th>kind</th><th>count</th><th>example message (first seen)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _sweep(rows: Sequence[dict[str, Any]]) -> str:
    cols = [c for c in _SWEEP_COLUMNS if any(c[0] in r for r in rows)]
    known = {c[0] for c in _SWEEP_COLUMNS}
    extra = sorted(
        {k for r in rows for k, v in r.items() if k not in known and _finite(v) is not None}
    )  # other figures, numbers only: a row is never a place for strings (or secrets)
    cols += [(k, k, 2) for k in extra]
    head = "".join(f"<th>{_e(h)}</th>" for _, h, _ in cols)
    body = []
    for r in rows:
        cells = "".join(_num_td(r.get(k), d, k) for k, _, d in cols)
        body.append(f"<tr>{cells}</tr>")
    svg = _sweep_chart(rows)
    chart = (
        _figure_html(
            "chart-sweep",
            svg,
            "Throughput vs latency: one point per step (p99 solid and labelled, p50 dashed). "
            "The knee is where latency rises faster than throughput.",
        )
        if svg
        else '<p class="note">No step has both throughput and latency figures.</p>'
    )
    return (
        '<section id="sweep"><h2>Sweep: throughput vs latency</h2>'
        f'{chart}<table class="sweep"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def _search_chart(sr: dict[str, Any]) -> str | None:
    """Attainment (with its interval) and TTFT p99 against load, one point per probe."""
    probes = [p for p in sr.get("probes") or [] if _finite(p.get("load")) is not None]
    if not probes:
        return None
    unit = "users" if sr.get("of") == "users" else "req/s"
    fig, axes = _figure(10.8, 3.6, cols=2)
    ax = axes[0][0]
    target = _finite(sr.get("slo_target_percent"))
    if target is not None:
        ax.axhline(target, color=_PURPLE, linestyle=":", linewidth=1.2, label="target")
    for passed, color, name in ((True, _GREEN, "pass"), (False, _RED, "fail")):
        pts = [p for p in probes if (p.get("verdict") == "pass") == passed]
        pts = [p for p in pts if _finite(p.get("attainment_percent")) is not None]
        if not pts:
            continue
        xs = [float(p["load"]) for p in pts]
        ys = [float(p["attainment_percent"]) for p in pts]
        err = [
            [y - p["interval_percent"][0] for y, p in zip(ys, pts, strict=True)],
            [p["interval_percent"][1] - y for y, p in zip(ys, pts, strict=True)],
        ]
        ax.errorbar(xs, ys, yerr=err, fmt="o", color=color, capsize=3, markersize=5, label=name)
    ax.set_title(f"SLO attainment vs load ({unit}), 95 % Wilson intervals", loc="left")
    ax.set_xlabel(unit)
    ax.set_ylabel("requests meeting the SLO (%)")
    ax.set_ylim(-3, 103)
    ax.set_xlim(0, max(float(p["load"]) for p in probes) * 1.1)
    ax.legend(loc="lower left")
    ax2 = axes[0][1]
    pts = sorted(
        (float(p["load"]), y) for p in probes if (y := _finite(p.get("ttft_p99_ms"))) is not None
    )
    if pts:
        ax2.plot(*zip(*pts, strict=True), "-o", color=_ORANGE, markersize=5, label="TTFT p99")
        slo = _finite((sr.get("slo") or {}).get("ttft_ms"))
        if slo is not None:
            ax2.axhline(slo, color=_PURPLE, linestyle=":", linewidth=1.2, label="TTFT SLO")
        ax2.set_ylim(0, max([y for _, y in pts] + [slo or 0.0]) * 1.15 or 1.0)
        ax2.legend(loc="upper left")
    ax2.set_title(f"TTFT p99 vs load ({unit}), probes in order of load", loc="left")
    ax2.set_xlabel(unit)
    ax2.set_ylabel("TTFT p99 (ms)")
    ax2.set_xlim(0, max(float(p["load"]) for p in probes) * 1.1)
    return _svg(fig)


_SEARCH_COLUMNS = (
    ("attainment_percent", "met %", 1),
    ("requests_checked", "checked", None), ("ttft_p99_ms", "TTFT p99 ms", 2),
    ("goodput_requests_per_s", "goodput/s", 2), ("output_tokens_per_s", "output tok/s", 1),
    ("warmup_s", "warm-up s", 1), ("measured_s", "measured s", 1),
)  # fmt: skip


def _search(sr: dict[str, Any]) -> str:
    """The capacity search: the chart, one row per probe, the answer."""
    svg = _search_chart(sr)
    chart = (
        _figure_html(
            "chart-search",
            svg,
            "One point per probe, green passed, red failed; bars: the 95 % Wilson interval "
            "of its attainment, dotted: the target. A bar across the target straddles it.",
        )
        if svg
        else '<p class="note">No probe.</p>'
    )
    head = "<th>load</th>" + "".join(f"<th>{_e(h)}</th>" for _, h, _ in _SEARCH_COLUMNS)
    head += "<th>verdict</th><th>interval %</th><th>stopped</th>"
    body = []
    for p in sr.get("probes") or []:
        load = f"{p.get('load', 0):g}"
        cells = f'<td data-key="load">{_e(load)}</td>'
        cells += "".join(_num_td(p.get(k), d, k) for k, _, d in _SEARCH_COLUMNS)
        lo, hi = p.get("interval_percent") or (None, None)
        flag = " *" if p.get("straddles_target") else ""
        cells += (
            f"<td>{_e(p.get('verdict'))}{flag}</td><td>{_num(lo, 1)}-{_num(hi, 1)}</td>"
            f"<td>{_e(p.get('stopped'))}</td>"
        )
        body.append(f"<tr>{cells}</tr>")
    best = sr.get("highest_passing")
    answer = (
        f"Highest load meeting the SLO: {best['load']:g}" if best else "No probed load met the SLO."
    )
    return (
        f'<section id="search"><h2>Capacity search ({_e(sr.get("of"))})</h2>'
        f'<p class="note">{_e(answer)}</p>{chart}<table class="sweep"><thead><tr>{head}'
        f"</tr></thead><tbody>{''.join(body)}</tbody></table></section>"
    )


# -- the page ------------------------------------------------------------------------------


def render_html_report(
    summary: dict[str, Any],
    hists: dict[str, Histogram],
    timeseries: list[dict[str, Any]],
    sweep: list[dict[str, Any]] | None = None,
    title: str = "LLM load test",
) -> str:
    """The report as one HTML string (see :func:`write_html_report`)."""
    import matplotlib

    mode = "streaming" if summary.get("mode") == "streaming" else "non-streaming"
    rows = [r for r in timeseries or () if _finite(r.get("t")) is not None]
    start = int(min(r["t"] for r in rows)) if rows else None
    parts = [_overview(summary, start), _turns(summary), _prefix_cache(summary)]
    parts += [_distributions(summary), _failures(summary)]
    server_chart: str | None = None
    with matplotlib.rc_context(_RC):
        charts = []
        for f in of_kind("distribution", mode):
            if not f.histogram:
                continue
            h = hists.get(f.key)
            svg = _histogram_chart(h, f.histogram, f.samples) if h is not None else None
            if svg:
                charts.append(_figure_html(f"chart-{f.key}", svg, _hist_caption(f.about)))
            else:
                charts.append(f'<p class="note">{_e(f.histogram)}: no samples.</p>')
        parts.append(
            '<section id="histograms"><h2>Histograms</h2>'
            f'<div class="charts">{"".join(charts)}</div></section>'
        )
        if rows:
            x, s, k = _series(rows)
            grouped = (
                ""
                if k == 1
                else f" Each point is {k} s: the highest per-second p99 and the median "
                "per-second p50 in it, and mean rates."
            )
            over_time = []
            svg_lat = _latency_time_chart(x, s, k, mode == "streaming")
            if svg_lat:
                over_time.append(
                    _figure_html(
                        "chart-latency-time",
                        svg_lat,
                        "p50 and p99 of the requests that ended in each second (per-second "
                        "histograms ~6 % wide); gaps are seconds in which none ended." + grouped,
                    )
                )
            over_time.append(
                _figure_html(
                    "chart-throughput-time",
                    _throughput_time_chart(x, s, k),
                    "Counted when each request ends, so long requests make the per-second "
                    "line spiky; the trailing mean shows the sustained rate." + grouped,
                )
            )
            parts.append(
                f'<section id="over-time"><h2>Over time</h2>{"".join(over_time)}</section>'
            )
            srv = summary.get("server")
            if isinstance(srv, dict) and srv.get("scrapes") and start is not None:
                server_chart = _server_chart(x, s, k, srv, start)
        else:
            parts.append(
                '<section id="over-time"><h2>Over time</h2>'
                '<p class="note">No per-second data.</p></section>'
            )
        parts.append(_server(summary, server_chart))
        if sweep:
            parts.append(_sweep(sweep))
        if isinstance(summary.get("search"), dict):
            parts.append(_search(summary["search"]))
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    dot = " \u00b7 "
    model = summary.get("model") or MISSING
    sub = dot.join([
        _e(mode), _e(summary.get("endpoint", "")),
        *([_e(summary["workload"])] if summary.get("workload") else []), f"model {_e(model)}",
        f"{_num(summary.get('concurrency'), None)} users", f"generated {generated} by llm-users",
    ])  # fmt: skip
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>"
        f'<header><h1>{_e(title)}</h1><p class="sub">{sub}</p>{_notes(summary)}</header>\n'
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def _hist_caption(what: str) -> str:
    return (
        f"{what} Rebinned from the exact histogram: log-spaced bins when the values span "
        f"more than a factor of {LOG_SPAN:g}, else linear."
    )


def write_html_report(
    path: str,
    summary: dict[str, Any],
    hists: dict[str, Histogram],
    timeseries: list[dict[str, Any]],
    sweep: list[dict[str, Any]] | None = None,
    title: str = "LLM load test",
) -> None:
    """Write the run's report to ``path``: one self-contained HTML file that opens offline.

    ``summary`` is :func:`~llm_users.report.summary.summary_dict`'s output, ``hists`` is
    ``Aggregate.hist``, ``timeseries`` is ``Aggregate.timeseries()`` and ``sweep`` the
    per-step rows of a sweep (a throughput-vs-latency section is added when given). The
    file is replaced atomically; :class:`~llm_users.report.writers.OutputError` on failure.
    """
    page = render_html_report(summary, hists, timeseries, sweep=sweep, title=title)
    write_bytes(path, page.encode("utf-8"), "HTML report")
