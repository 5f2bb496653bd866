"""The server's own /metrics over a test (``--server-metrics``): which source, a scraper
started at test start and stopped at test stop, and its figures for the summary and console.

One per master or local process (workers never scrape): started and stopped by the plugin.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from ..measure.figures import MISSING, fmt
from ..servermetrics import Scraper, metrics_url, probe
from .context import RunContext

__all__ = ["LIVE_FIELDS", "ServerWatch", "abort_check", "series_columns", "server_lines"]

log = logging.getLogger("llm_users")
PROBE_TIMEOUT_S = 2.0
# Abort verification (--cancel-rate): after the test, the running gauge is read every
# ABORT_POLL_S until it is back to 0 (nothing of ours is in flight then), ABORT_WAIT_S at most.
# A server that aborts frees a request within a decode step or two (tens of ms); seconds
# later, a request still counted as running was never freed.
ABORT_WAIT_S = 3.0
ABORT_POLL_S = 0.1
LIVE_FIELDS = ("t", "running", "waiting", "kv_cache_usage", "ttft_mean_ms", "ttft_p50_ms")


def series_columns(points: list[dict[str, Any]], t0: float) -> dict[str, list[Any]]:
    """The window's per-scrape points as columns (None where a scrape lacks a figure)."""
    cols: dict[str, list[Any]] = {f: [] for f in LIVE_FIELDS}
    for p in points:
        cols["t"].append(round(t0 + p["t"], 3))
        for f in LIVE_FIELDS[1:]:
            cols[f].append(p.get(f))
    return cols


class ServerWatch:
    """Resolves ``--server-metrics`` once per settings (``auto``: one probe), then scrapes."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.how = "off"  # "given" | "auto" | "off"
        self.reason: str | None = "off (--server-metrics off)"
        self.scraper: Scraper | None = None
        self._key: tuple[Any, ...] | None = None
        self._interval_s = 1.0
        self.settled: dict[str, Any] | None = None  # the abort check's readings (settle())

    def resolve(self, ctx: RunContext) -> None:
        """Decide the source for these settings; ``auto`` probes ``<host>/metrics`` once."""
        s = ctx.settings
        key = (s.server_metrics, s.server_metrics_interval, str(ctx.origin))
        if key == self._key:
            return
        self._key, self._interval_s = key, s.server_metrics_interval
        self.url, self.reason = None, None
        if s.server_metrics == "off":
            self.how, self.reason = "off", "off (--server-metrics off)"
        elif s.server_metrics == "auto" and not s.preflight:
            # --preflight off: nothing touches the server before the test, /metrics neither
            self.how, self.reason = "auto", "not available: not probed (--preflight off)"
        elif s.server_metrics == "auto":
            self.how = "auto"
            url = metrics_url(str(ctx.origin))
            ok, why = probe(url, timeout_s=PROBE_TIMEOUT_S)
            if ok:
                self.url = url
                log.info("llm-users: server metrics from %s (%s)", url, why)
            else:
                self.reason = f"not available: {why}"
                log.info("llm-users: server metrics %s (%s)", self.reason, url)
        else:
            self.how, self.url = "given", s.server_metrics

    def start(self, ctx: RunContext) -> None:
        """At test start: resolve if needed, then scrape (the first scrape is the baseline)."""
        self.stop(final=False)
        self.settled = None
        self.resolve(ctx)
        if self.url is not None:
            ssl = ctx.ssl_context if self.url.startswith("https") else None
            self.scraper = Scraper(self.url, self._interval_s, ssl_context=ssl)
            self.scraper.start(baseline_now=True)  # before any request

    def stop(self, final: bool = True) -> None:
        """At test stop: one last scrape, so the window ends with the test."""
        if self.scraper is not None:
            self.scraper.stop(final=final)

    def settle(self, ctx: RunContext) -> None:
        """After a test that cancelled requests: read the running gauge until it is back to
        0 (the test is over: none of its requests is in flight), ABORT_WAIT_S at most; kept
        in :attr:`settled` for :func:`abort_check`. Its own scrapes: not in the test's window."""
        if self.scraper is None:
            return
        ssl = ctx.ssl_context if self.scraper.url.startswith("https") else None
        began = time.perf_counter()
        running: float | None = None
        while True:
            reader = Scraper(self.scraper.url, self._interval_s, ssl_context=ssl)
            reader.scrape_once()
            running = reader.window.last.get("running", running)
            waited = time.perf_counter() - began
            if (running is not None and running <= 0) or waited >= ABORT_WAIT_S:
                break
            gevent.sleep(ABORT_POLL_S)
        self.settled = {"running_after": running, "waited_s": waited}

    @property
    def scrapes(self) -> int:
        """Pages fetched in this test (parsed or not)."""
        w = self.scraper.window if self.scraper is not None else None
        return w.scrapes + w.failed if w is not None else 0

    def live(self) -> dict[str, list[Any]] | None:
        """The server's series so far, for the web UI's charts: one list per field of
        :data:`LIVE_FIELDS`, ``t`` in wall-clock seconds (the client series' clock)."""
        t0 = self._t0_unix()
        if self.scraper is None or t0 is None:
            return None
        return series_columns(self.scraper.window.series, t0)

    def _t0_unix(self) -> float | None:
        """The first scrape's wall-clock time (the window keeps perf_counter times)."""
        t0 = self.scraper.window.t0 if self.scraper is not None else None
        return None if t0 is None else time.time() - (time.perf_counter() - t0)

    def result(self) -> dict[str, Any]:
        """The summary's ``server`` dict: the figures and their source, or why there are none."""
        if self.scraper is None:
            return {"source": None, "how": self.how, "not_available": self.reason}
        out = self.scraper.result()
        out["how"] = self.how
        if self.settled is not None:
            out["after_test"] = self.settled  # the running gauge once the test was over
        out["t0_unix"] = self._t0_unix()
        if not out["scrapes"]:
            out["not_available"] = out.get("last_error") or "no scrape succeeded"
        return out


def abort_check(
    cancelled: int, settled: dict[str, Any] | None, source: str | None
) -> dict[str, Any]:
    """Did the server free the requests the client cancelled? With nothing in flight after
    the test, the running gauge must be back to 0; what it still counts is the leak (at most
    the cancelled count: other clients of the server could hold the rest)."""
    out: dict[str, Any] = {"cancelled": cancelled}
    if settled is None or settled["running_after"] is None:
        why = "no server metrics (--server-metrics)" if source is None else "no running gauge"
        out.update(freed=None, leaked=None, verdict=f"not checked: {why}")
        return out
    running, waited = settled["running_after"], settled["waited_s"]
    leaked = min(cancelled, round(running))
    out.update(
        freed=cancelled - leaked,
        leaked=leaked,
        running_after=running,
        within_s=round(waited, 3) if not leaked else None,
        waited_s=round(waited, 3),
    )
    if not leaked:
        out["verdict"] = (
            f"freed {cancelled} of {cancelled} within {waited:.1f} s (the server's running "
            "gauge back to 0 after the test)"
        )
    else:
        out["verdict"] = (
            f"LEAK: the server still counts {running:g} requests as running {waited:.1f} s "
            f"after the test, with none in flight: {leaked} of {cancelled} cancelled requests "
            "were never freed"
        )
    return out


def _gauge(d: Any, scale: float = 1.0, unit: str = "") -> str:
    if not isinstance(d, dict):
        return str(d)
    return f"mean {d['mean'] * scale:.2f}{unit}, max {d['max'] * scale:.2f}{unit}"


def _pct(dist: dict[str, Any], key: str) -> str:
    """A server percentile with the bucket it lies in (its resolution), e.g. 175.0 (100-250)."""
    text = fmt(dist.get(key), 1)
    bucket = dist.get(f"{key}_bucket")
    if bucket and dist.get(key) not in (None, 0.0):
        low, high = bucket
        text += f" ({low:g}-{high:g})" if high != float("inf") else f" (>{low:g})"
    return text


def server_lines(summary: dict[str, Any]) -> list[str]:
    """Console lines for the summary's ``server`` dict, beside the client's TTFT."""
    srv = summary.get("server")
    if not isinstance(srv, dict):
        return []
    if not srv.get("scrapes"):
        src = f" ({srv['source']})" if srv.get("source") else ""
        return [f"  server metrics{src}: {srv.get('not_available') or 'none'}"]
    lines = [
        f"  server metrics ({srv['source']}, {srv['scrapes']} scrapes over "
        f"{srv['window_s']:.1f} s, {srv['failed_scrapes']} failed)"
    ]
    ttft, client = srv.get("ttft_ms"), summary.get("ttft_ms")
    if isinstance(ttft, dict):
        # The mean is exact (sum / count); percentiles only as fine as the server's buckets.
        row = (
            f"    server TTFT ms  n {ttft['count']}  mean {fmt(ttft['mean'], 1)}  "
            f"p50 {_pct(ttft, 'p50')}  p99 {_pct(ttft, 'p99')}"
        )
        if isinstance(client, dict) and client.get("count"):
            row += (
                f"  | client mean {fmt(client['mean'], 1)}  p50 {fmt(client['p50'], 1)}  "
                f"p99 {fmt(client['p99'], 1)}"
            )
            if client.get("mean") is not None and ttft.get("mean") is not None:
                row += f"  | client - server mean {client['mean'] - ttft['mean']:+.1f}"
        lines.append(row)
    else:
        lines.append(f"    server TTFT: {ttft}")
    q = srv.get("queue_time_ms")
    if isinstance(q, dict):
        lines.append(
            f"    queue time ms  mean {fmt(q['mean'], 1)}  "
            f"p50 {_pct(q, 'p50')}  p99 {_pct(q, 'p99')}"
        )
    else:
        lines.append(f"    queue time: {q}")
    lines.append(
        f"    running: {_gauge(srv.get('running'))}   waiting: {_gauge(srv.get('waiting'))}"
    )
    lines.append(f"    KV-cache usage: {_gauge(srv.get('kv_cache_usage'), 100.0, ' %')}")
    hit = srv.get("prefix_cache_hit_rate")
    hit_text = f"{hit * 100:.1f} %" if isinstance(hit, float) else str(hit or MISSING)
    lines.append(f"    prefix-cache hit rate: {hit_text}")
    if srv.get("last_error"):
        lines.append(f"    last failed scrape: {srv['last_error']}")
    return lines
