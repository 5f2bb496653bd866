"""The simulator's GPU meter: energy is power integrated exactly over its steps."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from llm_users.simulator.gpu import GpuMeter


def test_energy_integrates_idle_and_per_request_power() -> None:
    meter = GpuMeter(lambda running: 60.0 + 20.0 * running, lambda: 2, now_s=0.0)
    meter.set_running(3, 1.0)  # 1 s idle: 60 J
    meter.set_running(1, 3.0)  # 2 s at 120 W: 240 J
    meter.advance(3.5)  # 0.5 s at 80 W: 40 J
    assert meter.energy_j == 340.0


def test_the_page_splits_power_and_energy_over_the_gpus() -> None:
    meter = GpuMeter(lambda running: 100.0 * running, lambda: 4)
    meter.set_running(2)
    fams = {f.name: f for f in text_string_to_metric_families(meter.page(50.0, 4000.0).decode())}
    power = fams["DCGM_FI_DEV_POWER_USAGE"].samples
    assert [s.value for s in power] == [50.0] * 4 and {s.labels["gpu"] for s in power} == {
        "0", "1", "2", "3"
    }  # fmt: skip
    energy = fams["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    assert energy.type == "counter" and len(energy.samples) == 4
    assert sum(s.value for s in fams["DCGM_FI_DEV_FB_USED"].samples) == 4000.0
