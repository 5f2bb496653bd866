"""The install scripts' decisions, run with a PATH and a venv of fakes: which browser, which
torch, and that neither ever fails `make install` (it says what it skipped)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

BASH = "/bin/bash"
pytestmark = pytest.mark.skipif(not os.access(BASH, os.X_OK), reason="needs /bin/bash")


def _exe(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)
    return path


class Machine:
    """A fake machine: a PATH folder (id, apt-get, chromium...) and a venv's bin folder."""

    def __init__(self, tmp: Path, uid: int) -> None:
        self.tmp, self.path, self.bin = tmp, tmp / "path", tmp / "venv" / "bin"
        self.log = tmp / "calls.log"
        self.log.touch()
        self.bin.mkdir(parents=True)
        _exe(self.path / "id", f'[ "$1" = -u ] && echo {uid}')

    def tool(self, name: str, body: str = "exit 0") -> Path:
        return _exe(self.path / name, f'echo "{name} $*" >>{self.log}\n{body}')

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [BASH, str(ROOT / "scripts" / script), str(self.bin)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": str(self.path), "HOME": str(self.tmp), **env},
            cwd=self.tmp,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr  # never fails make install
        return proc


# ---- the browser ----


def _chosen(m: Machine) -> str:
    return (m.bin.parent / "browser-path").read_text().strip()


def test_root_with_apt_installs_debians_chromium(tmp_path: Path) -> None:
    m = Machine(tmp_path, uid=0)
    debian = tmp_path / "usr-bin" / "chromium"
    debian.parent.mkdir()
    m.tool(
        "apt-get",
        f'if [ "$1" = install ]; then echo "#!{BASH}" >{debian}; /bin/chmod +x {debian}; fi',
    )
    m.tool("chromium")  # on PATH too: Debian's still comes first for root
    proc = m.run("install-browser.sh", LLM_USERS_DEBIAN_CHROMIUM=str(debian))
    assert [c.split()[:2] for c in m.calls() if c.startswith("apt-get")] == [
        ["apt-get", "update"],
        ["apt-get", "install"],
    ]
    assert "chromium" in m.calls()[-1]
    assert _chosen(m) == str(debian)
    assert "installed with apt-get" in proc.stdout


def test_root_with_debians_chromium_present_runs_no_apt(tmp_path: Path) -> None:
    m = Machine(tmp_path, uid=0)
    m.tool("apt-get")
    debian = _exe(tmp_path / "usr-bin" / "chromium", "exit 0")
    m.run("install-browser.sh", LLM_USERS_DEBIAN_CHROMIUM=str(debian))
    assert m.calls() == [] and _chosen(m) == str(debian)


def test_non_root_never_calls_apt_and_takes_the_one_on_path(tmp_path: Path) -> None:
    m = Machine(tmp_path, uid=1000)
    m.tool("apt-get")
    chrome = m.tool("google-chrome")
    proc = m.run("install-browser.sh", LLM_USERS_DEBIAN_CHROMIUM=str(tmp_path / "none"))
    assert m.calls() == []
    assert _chosen(m) == str(chrome) and "found on PATH" in proc.stdout


def test_root_without_apt_takes_the_one_on_path(tmp_path: Path) -> None:
    m = Machine(tmp_path, uid=0)
    chromium = m.tool("chromium")
    m.run("install-browser.sh", LLM_USERS_DEBIAN_CHROMIUM=str(tmp_path / "none"))
    assert _chosen(m) == str(chromium)


def test_failing_apt_falls_through_to_playwright(tmp_path: Path) -> None:
    m = Machine(tmp_path, uid=0)
    m.tool("apt-get", "exit 100")
    pw = _exe(tmp_path / "ms-playwright" / "chrome", "exit 0")
    _exe(
        m.bin / "python",
        f'echo "python $*" >>{m.log}\nif [ "$1" = -m ]; then exit 0; else echo {pw}; fi',
    )
    proc = m.run("install-browser.sh", LLM_USERS_DEBIAN_CHROMIUM=str(tmp_path / "none"))
    assert "python -m playwright install chromium" in m.calls()
    assert _chosen(m) == str(pw) and "downloaded by playwright" in proc.stdout


def test_no_browser_anywhere_is_a_one_line_skip(tmp_path: Path) -> None:
    m = Machine(tmp_path, uid=1000)
    _exe(m.bin / "python", f'echo "python $*" >>{m.log}\nexit 1')  # no network for playwright
    proc = m.run("install-browser.sh")
    assert m.calls() == ["python -m playwright install chromium"]
    assert _chosen(m) == ""
    (line,) = proc.stdout.splitlines()
    assert line.startswith("install: browser: skipped (") and "CI=true" in line


def test_the_browser_tests_follow_the_choice(tmp_path: Path, monkeypatch) -> None:
    from tests import browser

    monkeypatch.setenv(browser.ENV, str(tmp_path / "missing"))
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="not an executable"):
        browser.require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI requires a browser"):
        browser.require_browser()
    ok = _exe(tmp_path / "chrome", "exit 0")
    monkeypatch.setenv(browser.ENV, str(ok))
    assert browser.require_browser() == str(ok)


# ---- torch for the real server ----

FAKE_PYTHON = """\
log={log}; state={state}
echo "python $*" >>$log
case "$*" in
  *torch.version.cuda*) [ -e $state/torch-cpu ]; exit $? ;;
  *version_info*) echo cp311 ;;
  *importlib.metadata*) echo 5.0.0 ;;
  "-m pip install -q torch --index-url"*)
    case "$FAKE_INDEX" in cpu) : >$state/torch-cpu ;; cuda) : >$state/torch-cuda ;;
      *) exit 1 ;; esac ;;
  "-m pip install -q "*+cpu-cp311*.whl) : >$state/torch-cpu ;;
  "-m pip uninstall"*) /bin/rm -f $state/torch-* ;;
esac
exit 0"""


def _torch_machine(tmp_path: Path) -> Machine:
    m = Machine(tmp_path, uid=1000)
    state = tmp_path / "state"
    state.mkdir()
    _exe(m.bin / "python", FAKE_PYTHON.format(log=m.log, state=state))
    return m


def _pip_installs(m: Machine) -> list[str]:
    return [c.removeprefix("python -m pip ") for c in m.calls() if c.startswith("python -m pip")]


def test_local_cpu_wheel_for_this_python_first(tmp_path: Path) -> None:
    m = _torch_machine(tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("torch-2.13.0+cpu-cp311-cp311-x.whl", "torch-2.13.0+cpu-cp312-cp312-x.whl"):
        (wheels / name).touch()
    proc = m.run("install-realserver.sh", TORCH_WHEEL_DIRS=f"/nowhere:{wheels}", FAKE_INDEX="cpu")
    assert _pip_installs(m) == [
        f"install -q {wheels}/torch-2.13.0+cpu-cp311-cp311-x.whl",
        "install -q transformers[serving]==5.0.0",
    ]
    assert "the local CPU wheel torch-2.13.0+cpu-cp311" in proc.stdout


def test_otherwise_pytorchs_cpu_index(tmp_path: Path) -> None:
    m = _torch_machine(tmp_path)
    proc = m.run("install-realserver.sh", TORCH_WHEEL_DIRS="", FAKE_INDEX="cpu")
    assert _pip_installs(m) == [
        "install -q torch --index-url https://download.pytorch.org/whl/cpu",
        "install -q transformers[serving]==5.0.0",
    ]
    assert "CPU-only index" in proc.stdout


def test_a_cuda_build_is_removed_and_skipped(tmp_path: Path) -> None:
    m = _torch_machine(tmp_path)
    proc = m.run("install-realserver.sh", TORCH_WHEEL_DIRS="", FAKE_INDEX="cuda")
    assert _pip_installs(m)[-1] == "uninstall -q -y torch"
    assert not any("transformers" in c for c in _pip_installs(m))
    (line,) = proc.stdout.splitlines()
    assert line.startswith("install: real server: skipped (") and "not a CPU build" in line


def test_no_torch_anywhere_is_a_one_line_skip(tmp_path: Path) -> None:
    m = _torch_machine(tmp_path)
    proc = m.run("install-realserver.sh", TORCH_WHEEL_DIRS="", FAKE_INDEX="down")
    assert len(_pip_installs(m)) == 1
    (line,) = proc.stdout.splitlines()
    assert line.startswith("install: real server: skipped (no local CPU wheel for cp311")


def test_an_installed_cpu_torch_is_kept(tmp_path: Path) -> None:
    m = _torch_machine(tmp_path)
    (tmp_path / "state" / "torch-cpu").touch()
    proc = m.run("install-realserver.sh", TORCH_WHEEL_DIRS="", FAKE_INDEX="down")
    assert _pip_installs(m) == ["install -q transformers[serving]==5.0.0"]
    assert "the CPU build already installed" in proc.stdout
