"""Dollars per 1M tokens and energy per token, by hand."""

from __future__ import annotations

from llm_users.report.cost import cost_dict, cost_lines, dollars_per_million


def test_dollars_per_million_by_hand() -> None:
    # 2 GPUs at $3.60/h = $0.002 a second; at 1,000 tokens/s a million take 1,000 s: $2
    assert abs(dollars_per_million(3.6, 2, 1000.0) - 2.0) < 1e-12
    assert dollars_per_million(3.6, 2, 0.0) is None


def test_cost_without_a_gpu_page_says_so() -> None:
    c = cost_dict(3.6, 0, None, output_tokens=100_000, prompt_tokens=0, duration_s=100.0)
    assert c is not None
    assert c["gpus"] == 1 and c["gpus_from"] == "default (--gpus 0)"
    assert c["basis"] == "--gpu-hour-cost and --gpus alone (no GPU page)"
    assert abs(c["dollars_per_million_output_tokens"] - 1.0) < 1e-12  # $0.10 for 100k tokens
    assert c["dollars_per_million_total_tokens"] is None  # no prompt tokens reported
    assert "alone (no GPU page)" in " ".join(cost_lines(c))


def test_cost_with_a_gpu_page_and_a_search() -> None:
    gpu = {"scrapes": 5, "gpus": 4, "energy_j": 500.0, "energy_from": "energy counter"}
    search = {"highest_passing": {"load": 8, "output_tokens_per_s": 2000.0,
                                  "total_tokens_per_s": 4000.0}}  # fmt: skip
    c = cost_dict(1.8, 0, gpu, output_tokens=1000, prompt_tokens=1000, duration_s=1.0,
                  search=search)  # fmt: skip
    assert c is not None
    assert c["energy_per_output_token_j"] == 0.5 and c["gpus"] == 4
    assert c["gpus_from"] == "the GPU page"
    best = c["at_highest_passing_load"]
    # 4 x $1.80/h = $0.002/s; 2,000 tokens/s: $1 per 1M; 4,000: $0.50
    assert abs(best["dollars_per_million_output_tokens"] - 1.0) < 1e-12
    assert abs(best["dollars_per_million_total_tokens"] - 0.5) < 1e-12


def test_no_price_and_no_page_gives_no_cost() -> None:
    assert cost_dict(0.0, 0, None, 100, 100, 1.0) is None
