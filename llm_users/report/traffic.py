"""Console lines of today's traffic: cancelled requests and the server's abort check, and the
rates of the endpoints that generate nothing (embeddings, rerank)."""

from __future__ import annotations

from typing import Any

from ..measure.figures import FIGURES

__all__ = ["cancel_lines", "rate_lines"]


def cancel_lines(d: dict[str, Any]) -> list[str]:
    """Requests hung up on (--cancel-rate), and whether the server freed them."""
    if not d.get("cancelled"):
        return []
    lines = [
        f"  cancelled: {d['cancelled']} requests ({100 * d['cancelled_rate']:.1f} % of those "
        "sent), in no figure above"
    ]
    check = d.get("abort_check")
    if check:
        lines.append(f"  abort check: {check['verdict']}")
    return lines


def rate_lines(d: dict[str, Any]) -> list[str]:
    """The per-second figures of an embeddings or rerank run (inputs, tokens, documents)."""
    rates = [f for f in FIGURES if f.per_s and f.key in d]
    return (
        ["  " + "   ".join(f"{f.label.lower()} {f.fmt(d[f.key])}" for f in rates)] if rates else []
    )
