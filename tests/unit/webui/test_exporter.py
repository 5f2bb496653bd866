"""The load generator's /metrics: read back with the stock parser, checked against the aggregate."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm_users.measure.aggregate import Aggregate
from llm_users.measure.histogram import Histogram
from llm_users.webui.exporter import BUCKETS_S, METRIC_NAMES, make_registry, render

ROOT = Path(__file__).resolve().parents[3]


def _aggregate() -> Aggregate:
    rng = random.Random(7)
    a = Aggregate()
    a.hist["ttft_ms"].record_many(rng.lognormvariate(5, 1) for _ in range(500))
    a.hist["itl_ms"].record_many(rng.uniform(0.5, 80) for _ in range(3000))
    a.hist["tpot_ms"].record_many(rng.uniform(5, 60) for _ in range(500))
    a.hist["e2e_ms"].record_many(rng.uniform(200, 90_000) for _ in range(500))
    a.requests = 500
    a.sums["output_tokens"] = 12_345.0
    a.failures.update({"http_500": 3, "first_token_timeout": 1})
    return a


def _families(a: Aggregate, **kw: object) -> dict:
    text = render(make_registry(lambda: a, **kw)).decode()  # type: ignore[arg-type]
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.mark.parametrize("short", ["ttft", "itl", "tpot", "e2e"])
def test_histograms_match_the_aggregate(short: str) -> None:
    a = _aggregate()
    h = a.hist[f"{short}_ms"]
    fam = _families(a)[f"llm_users_{short}_seconds"]
    assert fam.type == "histogram"
    by = {s.name: s for s in fam.samples if not s.name.endswith("_bucket")}
    assert by[f"llm_users_{short}_seconds_count"].value == h.count
    assert by[f"llm_users_{short}_seconds_sum"].value == pytest.approx(h.total / 1000.0)
    buckets = [s for s in fam.samples if s.name.endswith("_bucket")]
    assert len(buckets) == len(BUCKETS_S[short]) + 1
    for s in buckets:
        le = s.labels["le"]
        want = h.count if le == "+Inf" else h.rank_below(float(le) * 1000.0)
        assert s.value == want, le
    # something lands in more than one bucket: the test would notice a constant answer
    assert len({s.value for s in buckets}) > 3


def test_counters_and_gauges() -> None:
    a = _aggregate()
    f = _families(a, users=lambda: 12, loop_lag_s=lambda: 0.0015)
    assert f["llm_users_output_tokens"].samples[0].value == 12_345
    assert f["llm_users_requests"].samples[0].value == 500
    kinds = {s.labels["kind"]: s.value for s in f["llm_users_failures"].samples
             if s.name.endswith("_total")}  # fmt: skip
    assert kinds == {"http_500": 3, "first_token_timeout": 1}
    assert f["llm_users_users"].samples[0].value == 12
    assert f["llm_users_loop_lag_seconds"].samples[0].value == 0.0015


def test_each_scrape_reads_the_live_aggregate() -> None:
    a = Aggregate()
    reg = make_registry(lambda: a)
    assert b"llm_users_ttft_seconds_count 0.0" in render(reg)
    a.hist["ttft_ms"].record(42.0)
    assert b"llm_users_ttft_seconds_count 1.0" in render(reg)


def test_ranks_below_equals_rank_below() -> None:
    h = Histogram()
    h.record_many(random.Random(3).uniform(0, 5000) for _ in range(2000))
    bounds = [0.5, 1, 2.0, 2.048, 10, 99.9, 100, 1000, 4999, 10_000]
    assert h.ranks_below(bounds) == [h.rank_below(b) for b in bounds]


# -- the Grafana dashboard -----------------------------------------------------------------
def test_grafana_dashboard_schema_basics() -> None:
    d = json.loads((ROOT / "deploy/grafana/llm-users.json").read_text())
    assert d["title"] and d["uid"] and isinstance(d["schemaVersion"], int)
    assert d["panels"]
    seen: set[str] = set()
    for p in d["panels"]:
        assert p["title"] and p["targets"], p
        for t in p["targets"]:
            names = re.findall(r"\b(llm_users_[a-z0-9_]+|vllm:[a-z0-9_:]+)", t["expr"])
            assert names, t["expr"]
            for n in names:
                if n.startswith("vllm:"):
                    continue
                base = re.sub(r"_(bucket|sum|count)$", "", n)
                assert base in METRIC_NAMES, n
                seen.add(base)
    assert seen == METRIC_NAMES  # every exported metric is on a panel
