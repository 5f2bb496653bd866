"""`llm-users`: the subcommands dispatch, the bundled locustfile loads cleanly, -f still wins."""

from __future__ import annotations

import importlib.machinery
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from llm_users import cli
from tests.helpers import ROOT, help_sections


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llm_users.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_the_subcommands() -> None:
    proc = _cli("--help")
    assert proc.returncode == 0, proc.stderr
    for name in ("run", "simulator", "compare"):
        assert re.search(rf"^ +{name}\b", proc.stdout, re.MULTILINE), proc.stdout


def test_unknown_subcommand_is_one_error_naming_it() -> None:
    proc = _cli("bogus")
    assert proc.returncode == 2
    assert "invalid choice: 'bogus'" in proc.stderr and "Traceback" not in proc.stderr


def test_run_loads_the_bundled_locustfile(tmp_path: Path) -> None:
    proc = _cli("run", "--list", cwd=tmp_path)  # no locustfile.py here: the bundled one is used
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["Available", "Users:", "LLMUser"]


def test_run_with_f_uses_the_users_locustfile(tmp_path: Path) -> None:
    mine = tmp_path / "mine.py"
    mine.write_text(
        "from locust import User, task\n"
        "class Mine(User):\n"
        "    @task\n"
        "    def t(self):\n"
        "        pass\n"
    )
    proc = _cli("run", "-f", str(mine), "--list", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["Available", "Users:", "Mine"]  # not the bundled LLMUser


def test_bundled_locustfile_imports_nothing_from_its_folder_by_a_bare_name() -> None:
    # Locust puts the locustfile's folder (llm_users/) first on sys.path while it imports it:
    # a bare `import http` there would pick llm_users/http.py over the standard library's.
    code = (
        "import sys, locust\n"
        "from locust.util.load_locustfile import load_locustfile\n"
        f"users, shapes = load_locustfile({str(cli.LOCUSTFILE)!r})\n"
        "print(sorted(users), shapes)\n"
        f"pkg = {str(cli.LOCUSTFILE.parent)!r}\n"
        "bad = [n for n, m in list(sys.modules.items())\n"
        "       if (getattr(m, '__file__', None) or '').startswith(pkg)\n"
        "       and not n.startswith('llm_users') and n != 'locustfile']\n"
        "print('bare:', bad)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["['LLMUser'] []", "bare: []"]


def test_simulator_subcommand_runs_the_simulator(tmp_path: Path) -> None:
    proc = _cli("simulator", "--write-tokenizer", str(tmp_path / "tok"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "tok" / "tokenizer.json").is_file()


def test_compare_without_the_module_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(
        cli.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_users.report.compare" else real(name, *a),
    )
    assert cli.main(["compare", "a.json", "b.json"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "'compare' is not available" in err[0], err


def test_compare_dispatches_to_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("llm_users.report.compare")
    fake.__spec__ = importlib.machinery.ModuleSpec("llm_users.report.compare", None)
    fake.main = lambda argv: seen.append(argv) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llm_users.report.compare", fake)
    assert cli.main(["compare", "a.json", "b.json"]) == 3
    assert seen == [["a.json", "b.json"]]


def test_run_help_lists_locusts_options_then_every_llm_option_under_its_group(
    tmp_path: Path,
) -> None:
    from llm_users.options.declare import GROUPS, declared
    from llm_users.options.settings import Settings

    proc = _cli("run", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sections = help_sections(proc.stdout)
    titles = list(sections)
    assert titles.index("Common options") < titles.index(GROUPS["requests"])
    for _, o in declared(Settings):
        body = sections[GROUPS[o.group]]
        assert re.search(rf"^  {re.escape(o.flag)}\b", body, re.MULTILINE), o.flag


def test_options_prints_every_option_with_default_env_var_and_example(tmp_path: Path) -> None:
    from llm_users.options.declare import declared
    from llm_users.options.examples import EXAMPLES
    from llm_users.options.settings import Settings

    proc = _cli("options", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    for _, o in declared(Settings):
        mine = [line for line in lines if line.split(" ", 1)[0] == o.flag]
        assert len(mine) == 1, o.flag
        assert o.env_var in mine[0] and mine[0].rstrip().endswith(EXAMPLES[o.flag]), mine[0]
        if not o.secret and o.default_text:
            assert f"  {o.default_text}  " in mine[0], (o.flag, o.default_text)
    assert "(secret)" in next(line for line in lines if line.startswith("--api-key "))
