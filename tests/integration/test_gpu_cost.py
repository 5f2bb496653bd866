"""--gpu-metrics and --gpu-hour-cost against the simulator's DCGM page: energy per output token
and dollars per 1M tokens equal a hand computation from the simulator's own counters."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from llm_users.simulator import SimulatorProcess
from tests.helpers import run_in_process

PRICE = 2.5  # dollars per GPU-hour
W_PER_REQUEST, N, GPUS = 50.0, 2, 2


def _page(sim: SimulatorProcess) -> dict[str, float]:
    """The DCGM page summed over its GPUs: {family: value}, and how many GPUs it lists."""
    with urllib.request.urlopen(f"{sim.url}/dcgm/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = sum(s.value for s in fam.samples)
        out["gpus"] = len(fam.samples)
    return out


def test_energy_and_cost_per_token_match_the_simulators_counters(shared_sim, capsys):
    sim = shared_sim
    # No idle power: the counter grows only while requests run, all of them inside the
    # plugin's window (its baseline scrape precedes the first request, its last follows the
    # last), so the counter's increase between the test's two reads is the window's energy.
    sim.configure(
        ttft_ms=20, itl_ms=5, output_tokens=30, max_running=N, gpus=GPUS,
        gpu_idle_w=0, gpu_w_per_request=W_PER_REQUEST, metrics="on",
    )  # fmt: skip
    sim.reset()
    before, stats0 = _page(sim), sim.stats()
    plugin = run_in_process(
        sim.url, "--stream", "--requests-per-user", "8", "--gpu-metrics",
        f"{sim.url}/dcgm/metrics", "--server-metrics-interval", "0.25",
        "--gpu-hour-cost", f"{PRICE:g}", users=4,
    )  # fmt: skip
    after, stats1 = _page(sim), sim.stats()
    s = plugin.last_summary
    assert s is not None
    gpu, cost = s["gpu"], s["cost"]
    energy_j = (
        after["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
        - before["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    ) / 1000.0
    out_tokens = stats1["generation_tokens"] - stats0["generation_tokens"]
    prompt_tokens = stats1["prompt_tokens"] - stats0["prompt_tokens"]
    assert out_tokens == s["output_tokens"] == 32 * 30
    # every request holds a slot for at least its TTFT and 29 gaps, at W_PER_REQUEST
    assert energy_j >= 0.99 * 32 * (0.020 + 29 * 0.005) * W_PER_REQUEST
    assert gpu["gpus"] == GPUS == after["gpus"] and gpu["energy_from"] == "energy counter"
    assert abs(gpu["energy_j"] - energy_j) <= 0.01 * energy_j
    assert abs(cost["energy_per_output_token_j"] - energy_j / out_tokens) <= 0.01 * (
        energy_j / out_tokens
    )
    assert gpu["power_w"]["max"] <= N * W_PER_REQUEST + 1e-9
    assert gpu["utilization_percent"]["max"] == 100.0
    # dollars: GPUs x price x the run's duration, over its tokens
    dollars = GPUS * PRICE * s["duration_s"] / 3600.0
    assert cost["gpus"] == GPUS and cost["gpus_from"] == "the GPU page"
    per_m_out = dollars / out_tokens * 1e6
    per_m_total = dollars / (out_tokens + prompt_tokens) * 1e6
    assert abs(cost["dollars_per_million_output_tokens"] - per_m_out) <= 0.01 * per_m_out
    assert abs(cost["dollars_per_million_total_tokens"] - per_m_total) <= 0.01 * per_m_total
    out = capsys.readouterr().out
    assert "energy per output token:" in out and "per 1M output tokens" in out
    assert "from the GPU page and --gpu-hour-cost" in out


def test_without_a_gpu_page_the_cost_says_it_uses_the_price_alone(shared_sim, capsys):
    sim = shared_sim
    sim.configure(ttft_ms=10, itl_ms=2, output_tokens=10, max_running=0, metrics="on")
    sim.reset()
    # auto: port 9400 on 127.0.0.1 answers nothing here, so the GPU page is silently off
    plugin = run_in_process(
        sim.url, "--stream", "--requests-per-user", "3", "--gpu-metrics", "auto",
        "--gpu-hour-cost", "4", "--gpus", "8", users=2,
    )  # fmt: skip
    s = plugin.last_summary
    assert s is not None and "gpu" not in s
    cost = s["cost"]
    assert cost["basis"] == "--gpu-hour-cost and --gpus alone (no GPU page)"
    assert cost["gpus"] == 8 and "energy_j" not in cost
    expected = 8 * 4 * s["duration_s"] / 3600.0 / s["output_tokens"] * 1e6
    assert abs(cost["dollars_per_million_output_tokens"] - expected) <= 1e-9 * expected
    out = capsys.readouterr().out
    assert "--gpu-hour-cost and --gpus alone (no GPU page)" in out
    assert "GPU metrics" not in out
