"""A read-only view of the running test, for the web UI (installed by the plugin's wiring)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..measure.aggregate import Aggregate
from ..report.summary import RunInfo

__all__ = ["LiveView"]


@dataclass(frozen=True)
class LiveView:
    """Callables, so the view always reads the current state and can change none of it."""

    final: Callable[[], dict[str, Any] | None]  # the last test's summary, once it has ended
    configured: Callable[[], bool]  # options valid and a test set up
    aggregate: Callable[[], Aggregate]  # figures so far (the whole run on a master)
    info: Callable[[], RunInfo]  # run facts for a live summary (no end-of-run notes)
    api_key: Callable[[], str]  # only to scrub it from anything served
    users: Callable[[], float] = lambda: 0.0  # Locust's running users
    loop_lag_s: Callable[[], float | None] = lambda: None  # client loop lag p99 so far, s
    server: Callable[[], dict[str, Any] | None] = lambda: None  # server's live series, if any
    setup_error: Callable[[], str | None] = lambda: None  # why the last start stopped at once
