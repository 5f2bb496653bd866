"""Exit codes for CI gating, and the API key never appearing in any output."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_headless

pytestmark = pytest.mark.e2e

KEY = "sk-test-SECRET-0123456789abcdef"


@pytest.mark.parametrize(("limit", "code"), [("ttft_ms=500", 0), ("ttft_ms=1", 3)])
def test_slo_target_sets_the_exit_code(simulator, limit, code, tmp_path):
    sim = simulator(ttft_ms=20, itl_ms=2, output_tokens=5)
    out = tmp_path / "s.json"
    proc = run_headless(
        sim.url,
        2,
        "--stream",
        "--requests-per-user",
        "3",
        "--slo",
        limit,
        "--slo-target",
        "90",
        "--summary-json",
        str(out),
    )
    assert proc.returncode == code, proc.stderr[-2000:]
    goodput = json.loads(out.read_text())["goodput"]
    assert goodput["percent"] == (100.0 if code == 0 else 0.0)


def test_every_request_failing_stops_the_test(simulator):
    sim = simulator(fault="http_error", error_status=503)
    proc = run_headless(
        sim.url,
        2,
        "-t",
        "60s",
        "--max-failing-seconds",
        "1.5",
        timeout=40,
    )
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "every request failed for 1.5 s" in proc.stdout + proc.stderr


def test_the_key_never_appears_in_any_output(simulator, tmp_path):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=4, api_key=KEY)
    files = {
        "summary": tmp_path / "summary.json",
        "records": tmp_path / "records.jsonl",
        "html": tmp_path / "report.html",
        "locust_html": tmp_path / "locust.html",
        "log": tmp_path / "locust.log",
    }
    proc = run_headless(
        sim.url,
        2,
        "--stream",
        "--print-requests",
        "--requests-per-user",
        "3",
        "--api-key",
        KEY,
        "--summary-json",
        str(files["summary"]),
        "--records",
        str(files["records"]),
        "--html-report",
        str(files["html"]),
        "--html",
        str(files["locust_html"]),
        "--csv",
        str(tmp_path / "stats"),
        "--logfile",
        str(files["log"]),
        "--loglevel",
        "DEBUG",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(files["summary"].read_text())["requests"] == 6  # the key was accepted
    outputs = {"stdout": proc.stdout, "stderr": proc.stderr}
    outputs.update({name: p.read_text() for name, p in files.items()})
    outputs.update({p.name: p.read_text() for p in tmp_path.glob("stats*.csv")})
    assert len(outputs) >= 9
    for name, text in outputs.items():
        assert KEY not in text, name
        assert KEY[8:] not in text, name  # not even a part of it


def test_wrong_key_is_refused_before_the_test(simulator):
    sim = simulator(api_key=KEY)
    proc = run_headless(
        sim.url,
        1,
        "--requests-per-user",
        "1",
        env={"OPENAI_API_KEY": "sk-wrong"},
    )
    assert proc.returncode == 2
    assert "the server refused the API key (HTTP 401)" in proc.stderr
    assert "sk-wrong" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("option", "where", "what", "why"),
    [
        ("--summary-json", "under_a_file", "summary JSON", "Not a directory"),
        ("--records", "under_a_file", "records file", "Not a directory"),
        ("--records", "/dev/full", "records file", "No space left on device"),
        ("--html-report", "under_a_file", "HTML report", "Not a directory"),
    ],
)
def test_an_unwritable_output_is_one_line_and_exit_code_5(
    simulator, tmp_path, option, where, what, why
):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=4)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = str(blocker / "out.x") if where == "under_a_file" else where
    # enough rows to overflow the records file's 64 KiB buffer before the end
    proc = run_headless(sim.url, 2, "--stream", "--requests-per-user", "200", option, path)
    assert proc.returncode == 5, proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "TTFT" in proc.stdout and "400" in proc.stdout  # the console summary still printed
    lines = [line for line in proc.stderr.splitlines() if "cannot write" in line]
    assert lines == [f"llm-users: error: cannot write the {what} {path}: {why}"]
