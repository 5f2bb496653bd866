"""`--endpoint messages` in a real locust process: the key goes as x-api-key (the simulator
refuses anything else on /v1/messages) and appears in no output."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_headless

pytestmark = pytest.mark.e2e

KEY = "sk-ant-SECRET-0123456789abcdef"


def test_messages_run_with_x_api_key_and_no_key_in_any_output(simulator, tmp_path):
    sim = simulator(ttft_ms=5, itl_ms=1, output_tokens=6, reasoning_tokens=2, api_key=KEY)
    summary, records, log = tmp_path / "s.json", tmp_path / "r.jsonl", tmp_path / "l.log"
    proc = run_headless(
        sim.url,
        2,
        "--endpoint",
        "messages",
        "--stream",
        "--print-requests",
        "--requests-per-user",
        "3",
        "--summary-json",
        str(summary),
        "--records",
        str(records),
        "--logfile",
        str(log),
        "--loglevel",
        "DEBUG",
        env={"OPENAI_API_KEY": KEY},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(summary.read_text())
    sim_records = sim.records()
    # preflight's GET /v1/models is no record; every request the simulator served succeeded
    assert s["requests"] == 6 == len(sim_records) and s["failures"] == 0
    assert all(r["path"] == "/v1/messages" and r["status"] == 200 for r in sim_records)
    lines = [json.loads(x) for x in records.read_text().splitlines()]
    assert [x["endpoint"] for x in lines] == ["messages"] * 6
    assert sum(x["output_tokens"] for x in lines) == sum(
        r["completion_tokens"] for r in sim_records
    )
    outputs = {"stdout": proc.stdout, "stderr": proc.stderr, "summary": summary.read_text(),
               "records": records.read_text(), "log": log.read_text()}  # fmt: skip
    for name, text in outputs.items():
        assert KEY not in text and KEY[8:] not in text, name


def test_messages_with_a_wrong_key_is_refused_before_the_test(simulator):
    sim = simulator(api_key=KEY)
    proc = run_headless(
        sim.url, 1, "--endpoint", "messages", "--requests-per-user", "1",
        env={"OPENAI_API_KEY": "sk-wrong"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "the server refused the API key (HTTP 401)" in proc.stderr
    assert "sk-wrong" not in proc.stdout + proc.stderr
