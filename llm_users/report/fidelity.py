"""How far the client's own timing may be off: merged first tokens and the error bound
stated with every timing figure (from what the run measured, never assumed)."""

from __future__ import annotations

from typing import Any

from ..measure.aggregate import Aggregate

__all__ = ["error_bound", "merged_first"]


def _dist(agg: Aggregate, name: str) -> dict[str, Any]:
    return dict(agg.hist[name].summary())


def merged_first(agg: Aggregate) -> dict[str, Any]:
    """Streams whose first token came in one read with later tokens: its stamp is that
    read's (the newest segment's), so it may be late by up to the gap since the read before."""
    bound = agg.hist["first_token_bound_ms"]
    return {
        "requests": agg.counts["merged_first"],
        "of": agg.counts["stream_ok"],
        "bound_ms": _dist(agg, "first_token_bound_ms") if bound.count else None,
    }


def error_bound(agg: Aggregate, extra: dict[str, Any], mode: str) -> dict[str, Any]:
    """How far the client's own timing may be off, per figure, at p99, from what the run
    measured: the send (start is taken just before the write), how late a read is stamped
    (kernel stamps: the clock offset's uncertainty; user stamps: the loop's lag, how late a
    greenlet is woken), and for TTFT the merged first tokens (their stamp is a later read's)."""
    ts = extra.get("timestamps") or {}
    lag = (extra.get("client_loop_lag_ms") or {}).get("p99") or 0.0
    unc_ms = (ts.get("offset_uncertainty_us") or 0.0) / 1000.0
    source = ts.get("source", "user")
    read = float(unc_ms if source == "kernel" else max(lag, unc_ms))
    send_h = agg.hist["send_ms"]
    send = float(send_h.summary()["p99"] or 0.0) if send_h.count else 0.0
    merged = agg.hist["first_token_bound_ms"]
    streams = agg.counts["stream_ok"]
    # merged first tokens shift TTFT's p99 only when more than 1 % of the streams have one
    share = merged.count / streams if streams else 0.0
    merged_p99 = float(merged.summary()["p99"] or 0.0) if merged.count and share > 0.01 else 0.0
    out: dict[str, Any] = {"reads": source, "send_p99": send, "read": read}
    if mode == "streaming":
        out["ttft_ms"] = send + read + merged_p99
        out["itl_ms"] = 2 * read  # two stamps, each as late as a read may be
        out["e2e_ms"] = send + read
        out["merged_first_p99"] = merged_p99
    else:
        out["latency_ms"] = send + read
    return out
