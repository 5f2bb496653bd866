"""The simulator's GPUs as NVIDIA's DCGM exporter shows them (``GET /dcgm/metrics``): power that
follows the load (``gpu_idle_w`` + ``gpu_w_per_request`` x running requests, split evenly over
``gpus`` GPUs) and an energy counter (mJ) integrated exactly over that piecewise-constant power.

The meter outlives resets, as a GPU's counter outlives a server restart.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

__all__ = ["GpuMeter"]

MODEL_NAME = "NVIDIA Simulated GPU"


class GpuMeter:
    """Integrates power over time; ``set_running`` at every change of the running count."""

    def __init__(
        self, watts: Callable[[int], float], gpus: Callable[[], int], now_s: float | None = None
    ) -> None:
        self._watts, self._gpus = watts, gpus
        self.running = 0
        self.energy_j = 0.0
        self._at = perf_counter() if now_s is None else now_s

    def advance(self, now_s: float | None = None) -> None:
        """Add the energy used since the last change, at the power of the running count."""
        now = perf_counter() if now_s is None else now_s
        if now > self._at:
            self.energy_j += self._watts(self.running) * (now - self._at)
            self._at = now

    def set_running(self, running: int, now_s: float | None = None) -> None:
        self.advance(now_s)
        self.running = running

    def page(self, utilization_percent: float, memory_used_mib: float) -> bytes:
        """The exporter's page now: per GPU, an equal share of power, energy and memory."""
        self.advance()
        n = max(1, self._gpus())
        watts = self._watts(self.running)
        per_gpu = (
            ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", watts / n),
            ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", utilization_percent),
            ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).",
             memory_used_mib / n),
            ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter",
             "Total energy consumption since boot (in mJ).", self.energy_j * 1000.0 / n),
        )  # fmt: skip
        lines = []
        for name, kind, text, value in per_gpu:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            for i in range(n):
                labels = (
                    f'gpu="{i}",UUID="GPU-sim-{i:04d}",device="nvidia{i}",'
                    f'modelName="{MODEL_NAME}",Hostname="llm-users-simulator"'
                )
                lines.append(f"{name}{{{labels}}} {value!r}")
        return ("\n".join(lines) + "\n").encode()
