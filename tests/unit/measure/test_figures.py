"""The figures registry: one declaration per figure, read by every output and by --slo."""

from __future__ import annotations

import json

import pytest

from llm_users.measure.figures import (
    FIGURES,
    SLO_KEYS,
    by_key,
    registry_json,
    request_value,
    slo_met,
)
from llm_users.measure.per_request import RequestResult
from llm_users.options.settings import SLO_KEYS as OPTION_SLO_KEYS


def result(**kw: object) -> RequestResult:
    base: dict[str, object] = dict(endpoint="chat", stream=True, ok=True, start_wall=0.0,
                                   e2e_ms=300.0, ttft_ms=100.0, ttfc_ms=180.0, tpot_ms=20.0,
                                   itl_ms=[10.0, 40.0, 20.0])  # fmt: skip
    base.update(kw)
    return RequestResult(**base)  # type: ignore[arg-type]


def test_keys_are_unique_and_slo_keys_come_from_the_registry() -> None:
    keys = [f.key for f in FIGURES]
    assert len(keys) == len(set(keys))
    assert OPTION_SLO_KEYS is SLO_KEYS
    assert set(SLO_KEYS) >= {"ttft_ms", "tpot_ms", "e2e_ms", "itl_ms"}
    assert all(by_key(k).kind == "distribution" and by_key(k).unit == "ms" for k in SLO_KEYS)


def test_labels_with_units() -> None:
    assert by_key("ttft_ms").with_unit == "TTFT (ms)"
    assert by_key("duration_s").with_unit == "Duration (s)"
    assert by_key("output_tokens_per_s").with_unit == "Output tokens/s"  # unit already there
    assert by_key("average_follow_tokens").with_unit == "Average follow tokens"
    assert by_key("itl_ms").title == "ITL (per event)"
    assert by_key("concurrency").title_with_unit == "Users (concurrency)"
    assert by_key("requests_per_s").fmt(1 / 3) == "0.333" and by_key("requests").fmt(None) == "-"


def test_registry_json_is_plain_json() -> None:
    data = json.loads(json.dumps(registry_json()))
    assert [d["key"] for d in data] == [f.key for f in FIGURES]
    assert data[0]["with_unit"] and "digits" in data[0]


def test_itl_slo_is_the_largest_gap() -> None:
    r = result()
    assert request_value(r, "itl_ms") == 40.0
    assert slo_met(r, {"itl_ms": 40.0}) and not slo_met(r, {"itl_ms": 39.9})
    assert not slo_met(result(itl_ms=[]), {"itl_ms": 100.0})  # no gap: the figure is missing


@pytest.mark.parametrize(
    ("limits", "met"),
    [({"ttft_ms": 100.0}, True), ({"ttft_ms": 99.0}, False),
     ({"ttft_ms": 100.0, "e2e_ms": 299.0}, False), ({"tpot_ms": 20.0, "e2e_ms": 300.0}, True)],
)  # fmt: skip
def test_every_limit_must_hold(limits: dict[str, float], met: bool) -> None:
    assert slo_met(result(), limits) is met
    assert not slo_met(result(ok=False), limits)  # a failed request never meets an SLO
