"""The figures registry: one declaration per figure, read by every output and by --slo."""

from __future__ import annotations

import json

import pytest

from llm_users.measure.figures import (
    FIGURES,
    MISSING,
    SLO_KEYS,
    by_key,
    fmt,
    fmt_change_pct,
    fmt_grouped,
    fmt_seed,
    fmt_sig,
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


@pytest.mark.parametrize(
    ("x", "digits", "plain", "grouped"),
    [
        (12345.678, 1, "12345.7", "12,345.7"),
        (1 / 3, 3, "0.333", "0.333"),
        (2.5, None, "2", "2"),  # no digits: a whole number (round half to even)
        (1234567, 2, "1234567", "1,234,567"),  # a count stays whole whatever the digits
        (True, 2, "True", "True"),
        ("sim-model", None, "sim-model", "sim-model"),
        (None, 2, "-", "-"),
        ("", 2, "-", "-"),
        (float("nan"), 2, "-", "-"),
        (float("inf"), 1, "-", "-"),
    ],
)
def test_one_function_per_style_and_one_missing_mark(
    x: object, digits: int | None, plain: str, grouped: str
) -> None:
    assert fmt(x, digits) == plain
    assert fmt_grouped(x, digits) == grouped


def test_the_other_styles_share_the_missing_mark() -> None:
    assert MISSING == "-"
    assert fmt_sig(1234567.0) == "1.23457e+06" and fmt_sig(200.0) == "200"
    assert fmt_sig(100.0, signed=True) == "+100" and fmt_sig(-0.5, signed=True) == "-0.5"
    assert fmt_change_pct(7.5) == "+7.5%" and fmt_change_pct(-50.0) == "-50.0%"
    assert fmt_sig(None) == fmt_change_pct(None) == fmt_sig(float("inf")) == MISSING
    # The seed's lines, word for word: every digit of the float, and its own "n/a".
    assert fmt_seed(2575.0) == "2575.0" and fmt_seed(74) == "74.0" and fmt_seed(None) == "n/a"
    assert by_key("output_tokens_per_s").fmt_grouped(12345.678) == "12,345.7"


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
