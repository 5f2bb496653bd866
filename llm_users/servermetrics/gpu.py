"""A GPU exporter's page (NVIDIA DCGM exporter, Prometheus text) over the test -> the summary's
``gpu`` figures: power, utilisation, memory, and the energy the GPUs used in the window."""

from __future__ import annotations

from typing import Any

from ..wire.http import Origin
from .window import Window

__all__ = ["GPU_PORT", "gpu_figures", "gpu_url"]

GPU_PORT = 9400  # dcgm-exporter's default listening port


def gpu_url(host: str) -> str:
    """``--gpu-metrics auto``: the DCGM exporter's usual address on the server's host."""
    o = Origin.parse(host)
    name = f"[{o.host}]" if ":" in o.host else o.host
    return f"http://{name}:{GPU_PORT}/metrics"


def gpu_figures(w: Window) -> dict[str, Any]:
    """The window's GPU figures. Energy is the increase of the energy counter (mJ) from the
    first scrape to the last; a page without that counter gives mean power x the window,
    and says so in ``energy_from``."""
    window_s = w.t_last - w.t0 if w.t0 is not None and w.t_last is not None else 0.0
    power = w.gauge("power_w")
    energy_mj = w.counter("energy_mj")
    energy_j: float | None = None
    energy_from = None
    if energy_mj is not None:
        energy_j, energy_from = energy_mj / 1000.0, "energy counter"
    elif power is not None and window_s > 0:
        energy_j, energy_from = power["mean"] * window_s, "mean power x window"
    gpus = max(w.label_sets.get(k, 0) for k in ("power_w", "energy_mj", "memory_used_mib"))
    return {
        "source": w.source,
        "scrapes": w.scrapes,
        "failed_scrapes": w.failed,
        "window_s": window_s,
        "gpus": gpus or None,
        "power_w": power,
        "utilization_percent": w.gauge("utilization_percent"),
        "memory_used_mib": w.gauge("memory_used_mib"),
        "energy_j": energy_j,
        "energy_from": energy_from,
        "series": list(w.series),
        **({"last_error": w.last_note} if w.last_note else {}),
    }
