"""llm-users compare: figures side by side, regression rules and their exit codes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llm_users.report.compare import figures, main

ROOT = Path(__file__).resolve().parents[3]


def _dist(mean: float, p50: float, p99: float) -> dict[str, Any]:
    return {"count": 100, "mean": mean, "p50": p50, "p90": p99 * 0.9, "p95": p99 * 0.95,
            "p99": p99, "max": p99 * 1.2}  # fmt: skip


BASE: dict[str, Any] = {
    "mode": "streaming",
    "endpoint": "chat",
    "model": "m",
    "host": "http://a:8000",
    "concurrency": 8,
    "requests": 100,
    "failures": 0,
    "failures_by_kind": {},
    "failure_examples": {},
    "duration_s": 60.0,
    "output_tokens": 25_600,
    "output_tokens_per_s": 426.7,
    "requests_per_s": 1.667,
    "ttft_ms": _dist(100.0, 90.0, 200.0),
    "itl_ms": _dist(20.0, 19.0, 40.0),
    "client_loop_lag_ms": {"p50": 0.5, "p99": 1.5, "max": 2.0, "count": 600},
    "notes": [],
}


def run(tmp_path: Path, new: dict[str, Any], *args: str, base: dict[str, Any] | None = None
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    b, n = tmp_path / "base.json", tmp_path / "new.json"
    b.write_text(json.dumps(base or BASE))
    n.write_text(json.dumps(new))
    return subprocess.run(
        [sys.executable, "-m", "llm_users.report.compare", str(b), str(n), *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_figures_flatten_distributions_and_skip_settings() -> None:
    f = figures(BASE)
    assert f["ttft_ms.p99"] == 200.0 and f["ttft_ms.mean"] == 100.0
    assert "ttft_ms.count" not in f  # a distribution gives mean/p50/p90/p95/p99/max
    assert f["client_loop_lag_ms.p99"] == 1.5
    assert "concurrency" not in f and "model" not in f and "host" not in f


def test_planted_regression_exits_3_and_names_the_rule(tmp_path: Path) -> None:
    new = copy.deepcopy(BASE)
    new["ttft_ms"]["p99"] = 230.0  # +15 %
    r = run(tmp_path, new, "--fail-on", "ttft_ms.p99>+10%,output_tokens_per_s<-5%")
    assert r.returncode == 3, r.stderr
    assert "REGRESSION: ttft_ms.p99>+10%: 200 -> 230 (+15%)" in r.stdout
    regressions = [line for line in r.stdout.splitlines() if line.startswith("REGRESSION")]
    assert len(regressions) == 1  # throughput did not move: that rule holds


def test_no_regression_exits_0(tmp_path: Path) -> None:
    new = copy.deepcopy(BASE)
    new["ttft_ms"]["p99"] = 215.0  # +7.5 %
    new["output_tokens_per_s"] = 410.0  # -3.9 %
    r = run(tmp_path, new, "--fail-on", "ttft_ms.p99>+10%,output_tokens_per_s<-5%")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "REGRESSION" not in r.stdout
    assert "ttft_ms.p99" in r.stdout and "+7.5%" in r.stdout


def test_throughput_drop_and_absolute_rule(tmp_path: Path) -> None:
    new = copy.deepcopy(BASE)
    new["output_tokens_per_s"] = 400.0  # -6.3 %
    new["ttft_ms"]["p50"] = 111.0  # +21 ms
    r = run(tmp_path, new, "--fail-on", "output_tokens_per_s<-5%,ttft_ms.p50>+20ms")
    assert r.returncode == 3
    assert "REGRESSION: output_tokens_per_s<-5%" in r.stdout
    assert "REGRESSION: ttft_ms.p50>+20ms: 90 -> 111 (+21ms)" in r.stdout
    r = run(tmp_path, new, "--fail-on", "ttft_ms.p50>+0.025s")  # 21 ms < 25 ms
    assert r.returncode == 0, r.stdout


def test_settings_mismatch_warns(tmp_path: Path) -> None:
    new = copy.deepcopy(BASE)
    new["concurrency"] = 16
    new["model"] = "other"
    new["host"] = "http://b:8000"  # comparing two servers is fine
    r = run(tmp_path, new)
    assert r.returncode == 0
    assert "warning: the runs differ in concurrency: 8 vs 16" in r.stdout
    assert "warning: the runs differ in model: 'm' vs 'other'" in r.stdout
    assert "host" not in r.stdout


def test_json_format(tmp_path: Path) -> None:
    new = copy.deepcopy(BASE)
    new["ttft_ms"]["p99"] = 300.0
    r = run(tmp_path, new, "--format", "json", "--fail-on", "ttft_ms.p99>+10%")
    assert r.returncode == 3
    out = json.loads(r.stdout)
    row = next(x for x in out["figures"] if x["figure"] == "ttft_ms.p99")
    assert row == {"figure": "ttft_ms.p99", "base": 200.0, "new": 300.0, "change": 100.0,
                   "change_pct": 50.0}  # fmt: skip
    assert len(out["broken"]) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fail-on", "ttft_ms.p99>10"], None),  # fine: absolute, unitless
        (["--fail-on", "ttft_ms.p99>>+10%"], "cannot read 'ttft_ms.p99>>+10%'"),
        (["--fail-on", "ttft_ms.p99=+10%"], "cannot read"),
        (["--fail-on", "nonsense.p99>+10%"], "unknown figure 'nonsense.p99'"),
        (["--fail-on", "requests<-5ms"], "'requests' is not a time"),
        (["--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_bad_rules_exit_2_in_one_line(tmp_path: Path, args: list[str], needle: str | None) -> None:
    r = run(tmp_path, BASE, *args)
    if needle is None:
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 2, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr


def test_bad_files_exit_2(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(BASE))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    assert main([str(tmp_path / "missing.json"), str(good)]) == 2
    assert main([str(good), str(bad)]) == 2
    assert main([str(lst), str(good)]) == 2
    assert main([str(good), str(good)]) == 0


def test_missing_file_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(BASE))
    assert main([str(good), str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: no such file: {tmp_path / 'nope.json'}"


def test_warnings_first_then_the_headline_figures_and_no_noise(tmp_path: Path) -> None:
    base = {**copy.deepcopy(BASE), "server": {"t0_unix": 1.7e9, "ttft_ms": _dist(9, 8, 20)}}
    base["options"] = {"max_tokens": 32, "stream": True, "summary_json": "a.json"}
    new = copy.deepcopy(base)
    new["options"].update(max_tokens=200, summary_json="b.json")  # the file name is no setting
    new["server"]["t0_unix"] = 1.8e9
    out = run(tmp_path, new, base=base).stdout.splitlines()
    assert out[0] == "warning: the runs differ in max_tokens: 32 vs 200"
    assert not any("summary_json" in line for line in out)
    figures_shown = [line.split()[0] for line in out[2:] if not line.startswith("(")]
    assert figures_shown[:4] == ["ttft_ms.p50", "ttft_ms.p99", "itl_ms.p99", "output_tokens_per_s"]
    assert "server.t0_unix" not in figures_shown and "server.ttft_ms.mean" in figures_shown
    assert out[-1].startswith("(") and "--all" in out[-1]
    shown_all = run(tmp_path, new, "--all", base=base).stdout
    assert "server.t0_unix" in shown_all


def test_three_runs_side_by_side(tmp_path: Path) -> None:
    paths = []
    for i, p99 in enumerate((200.0, 220.0, 300.0)):
        s = copy.deepcopy(BASE)
        s["ttft_ms"]["p99"] = p99
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(s))
    r = subprocess.run(
        [sys.executable, "-m", "llm_users.report.compare", *map(str, paths),
         "--fail-on", "ttft_ms.p99>+20%"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("ttft_ms.p99 "))
    assert row.split() == ["ttft_ms.p99", "200", "220", "300", "+10.0%", "+50.0%"]
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("REGRESSION")] == [
        "REGRESSION: run 3: ttft_ms.p99>+20%: 200 -> 300 (+50%)"
    ]


def test_one_run_is_not_a_comparison(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "g.json"
    good.write_text(json.dumps(BASE))
    assert main([str(good)]) == 2
    assert "the following arguments are required: new" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "needle"),
    [  # 1,000 levels: a RecursionError, or (Python 3.13) parsed, then too deep
        ('{"ttft_ms": ' + "[" * 1000 + "]" * 1000 + "}", "is not a summary"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "is not a summary (RecursionError)"),
        ('{"a": ' + '{"b": ' * 900 + "1" + "}" * 901, "nested more than 32 levels deep"),
    ],
)
def test_deeply_nested_file_is_one_line_and_exit_2(tmp_path: Path, text: str, needle: str) -> None:
    good, deep = tmp_path / "good.json", tmp_path / "deep.json"
    good.write_text(json.dumps(BASE))
    deep.write_text(text)
    r = subprocess.run(
        [sys.executable, "-m", "llm_users.cli", "compare", str(good), str(deep)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr
