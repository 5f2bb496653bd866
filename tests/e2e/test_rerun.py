"""A run's summary JSON records how it ran: `llm-users run --from-summary` reruns it, and
`llm-users compare` warns first when two runs were set up differently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import locust
import pytest

import llm_users
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

KEY = "sk-test-RERUN-0123456789abcdef"


def _run(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OPENAI_API_KEY=KEY)
    return subprocess.run(
        [sys.executable, "-m", "llm_users.cli", "run", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def test_a_run_from_its_summary_uses_the_same_settings(simulator, tmp_path):
    sim = simulator(ttft_ms=2, itl_ms=1, api_key=KEY)
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    before = datetime.now(timezone.utc).replace(microsecond=0)
    proc = _run(
        "--headless", "-u", "2", "-r", "2", "--host", sim.url, "--no-stream",
        "--max-tokens", "12", "--endpoint", "completions", "--sampling", "original",
        "--requests-per-user", "3", "--header", "X-Run: one", "--summary-json", str(first),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = json.loads(first.read_text())
    assert KEY not in first.read_text()
    assert datetime.fromisoformat(a["started_at"]) >= before
    assert a["started_at"].endswith("+00:00")
    assert a["versions"] == {"llm_users": llm_users.__version__, "locust": locust.__version__}
    assert a["host"] == sim.url and a["model"] == "sim-model"
    opts = a["options"]
    assert (opts["stream"], opts["max_tokens"], opts["endpoint"]) == (False, 12, "completions")
    assert opts["num_users"] == 2 and opts["api_key"] == ""  # the key came from the environment
    assert a["requests"] == 6 and a["mode"] == "non-streaming"

    sim.reset()
    proc = _run("--from-summary", str(first), "--summary-json", str(second), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    b = json.loads(second.read_text())
    same = {k: v for k, v in b["options"].items() if k != "summary_json"}
    assert same == {k: v for k, v in opts.items() if k != "summary_json"}
    assert (b["host"], b["mode"], b["requests"]) == (a["host"], a["mode"], 6)
    assert [(r["max_tokens"], r["stream"]) for r in sim.records()] == [(12, False)] * 6


def test_compare_of_a_32_and_a_200_token_run_warns_about_max_tokens_first(simulator, tmp_path):
    sim = simulator(ttft_ms=2, itl_ms=0)
    paths = []
    for tokens in ("32", "200"):
        paths.append(str(tmp_path / f"{tokens}.json"))
        proc = _run(
            "--headless", "-u", "2", "-r", "2", "--host", sim.url, "--max-tokens", tokens,
            "--requests-per-user", "2", "--summary-json", paths[-1], cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "llm_users.cli", "compare", *paths],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "warning: the runs differ in max_tokens: 32 vs 200", lines[:3]
    assert [ln for ln in lines if ln.startswith("warning:")] == [lines[0]]  # nothing else differs
    assert lines[2].split()[0] == "ttft_ms.p50"  # the headline figures come first
