"""The GPUs' own page over a test (``--gpu-metrics``, a DCGM exporter): resolved once per
settings (``auto``: port 9400 on the server's host, silently off if it does not answer),
scraped from test start to test stop beside ``--server-metrics``, on the same clock.

One per master or local process (workers never scrape): started and stopped by the plugin.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..servermetrics import GPU_FAMILIES, Scraper, gpu_figures, gpu_url, probe
from .context import RunContext

__all__ = ["GpuWatch"]

log = logging.getLogger("llm_users")
PROBE_TIMEOUT_S = 1.0  # auto: a host without an exporter must not hold the start up for long


class GpuWatch:
    """Resolves ``--gpu-metrics`` once per settings, then scrapes like the server's page."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.how = "off"  # "given" | "auto" | "off"
        self.reason = "off (--gpu-metrics off)"
        self.scraper: Scraper | None = None
        self._key: tuple[Any, ...] | None = None
        self._interval_s = 1.0

    def resolve(self, ctx: RunContext) -> None:
        s = ctx.settings
        key = (s.gpu_metrics, s.server_metrics_interval, str(ctx.origin), s.preflight)
        if key == self._key:
            return
        self._key, self._interval_s = key, s.server_metrics_interval
        self.url = None
        if s.gpu_metrics == "off":
            self.how, self.reason = "off", "off (--gpu-metrics off)"
        elif s.gpu_metrics == "auto":
            self.how = "auto"
            url = gpu_url(str(ctx.origin))
            ok, why = False, "not probed (--preflight off)"
            if s.preflight:  # nothing touches the server's host before the test without it
                ok, why = probe(url, PROBE_TIMEOUT_S, families=GPU_FAMILIES)
            if ok:
                self.url = url
                log.info("llm-users: GPU metrics from %s (%s)", url, why)
            else:  # the usual case without an exporter: say it at debug level only
                self.reason = f"not available: {why} ({url})"
                log.debug("llm-users: GPU metrics %s", self.reason)
        else:
            self.how, self.url = "given", s.gpu_metrics

    def start(self, ctx: RunContext) -> None:
        """At test start: the first scrape is the baseline of the energy counter."""
        self.stop(final=False)
        self.resolve(ctx)
        if self.url is not None:
            ssl = ctx.ssl_context if self.url.startswith("https") else None
            self.scraper = Scraper(
                self.url, self._interval_s, ssl_context=ssl, families=GPU_FAMILIES
            )
            self.scraper.start(baseline_now=True)
        else:
            self.scraper = None

    def stop(self, final: bool = True) -> None:
        if self.scraper is not None:
            self.scraper.stop(final=final)

    def live(self) -> dict[str, list[Any]] | None:
        """Power and utilisation so far for the web UI, ``t`` in wall-clock seconds."""
        w = self.scraper.window if self.scraper is not None else None
        if w is None or w.t0 is None:
            return None
        t0 = time.time() - (time.perf_counter() - w.t0)
        cols: dict[str, list[Any]] = {"t": [], "power_w": [], "utilization_percent": []}
        for p in w.series:
            cols["t"].append(round(t0 + p["t"], 3))
            cols["power_w"].append(p.get("power_w"))
            cols["utilization_percent"].append(p.get("utilization_percent"))
        return cols

    def result(self) -> dict[str, Any] | None:
        """The summary's ``gpu`` dict, or None when off (auto finding nothing is off too)."""
        if self.scraper is None:
            return None
        out = gpu_figures(self.scraper.window)
        out["how"] = self.how
        w = self.scraper.window
        out["t0_unix"] = None if w.t0 is None else time.time() - (time.perf_counter() - w.t0)
        if not out["scrapes"]:
            out["not_available"] = out.get("last_error") or "no scrape succeeded"
        return out
