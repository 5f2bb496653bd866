"""The server's own per-request timing, when a response carries it (vLLM's ``metrics``
object, pull request #46768): kept as it came, numbers only, for the records."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["server_timing"]


def server_timing(obj: dict[str, Any]) -> dict[str, float] | None:
    """The numbers of a response's top-level ``metrics`` object: vLLM's per-request timing
    (``time_to_first_token_ms``, ``queue_time_ms``, ``generation_time_ms``, ``mean_itl_ms``,
    ``tokens_per_second``), sent when the server runs with ``--enable-per-request-metrics``
    and the request asks with ``include_metrics``; None when absent."""
    m = obj.get("metrics")
    if not isinstance(m, dict):
        return None
    out = {
        str(k): float(v)
        for k, v in m.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    return out or None
