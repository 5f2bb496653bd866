"""`make install` as an ordinary user, on a copy of the repository: it succeeds, and says what
it skipped (no apt-get without root; no torch when neither a local CPU wheel nor PyTorch's
CPU index can be had). Needs root to create the user; skips elsewhere."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

USER = "llm-users-ci"
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def user_home() -> Iterator[Path]:
    missing = [t for t in ("useradd", "userdel", "runuser", "git") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"needs root and {', '.join(missing) or 'useradd'} to run as another user")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"no {SYSTEM_PYTHON} that another user can run")
    base = Path(tempfile.mkdtemp(prefix="llm-users-nonroot-", dir="/tmp"))
    base.chmod(0o755)
    home = base / "home"
    try:
        pwd.getpwnam(USER)
        subprocess.run(["userdel", USER], check=False, capture_output=True)
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--home-dir", str(home), "--create-home", "--shell", "/bin/bash", USER],
        check=True,
        capture_output=True,
    )
    try:
        yield home
    finally:
        subprocess.run(["userdel", USER], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _runuser() -> str:
    path = shutil.which("runuser")
    assert path is not None
    return path


def _copy_repo(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


@pytest.mark.timeout(400)
def test_make_install_as_a_non_root_user(user_home: Path) -> None:
    repo = user_home / "repo"
    _copy_repo(repo)
    shutil.chown(user_home, USER)
    subprocess.run(["chown", "-R", USER, str(repo)], check=True)
    env = {
        "HOME": str(user_home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        # no torch to be had: no local wheel folder, an unreachable CPU index (fast refusal)
        "TORCH_WHEEL_DIRS": "",
        "TORCH_CPU_INDEX": "http://127.0.0.1:9/whl/cpu",
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},
    }
    proc = subprocess.run(
        [_runuser(), "-u", USER, "--", "make", "install", f"PY={SYSTEM_PYTHON}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=380,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    said = [line for line in out.splitlines() if line.startswith("install: ")]
    # no root: Debian's apt-get is not tried; the machine's Chromium is taken from PATH
    assert not any("apt-get" in line for line in said), said
    browser = (repo / ".venv" / "browser-path").read_text().strip()
    if browser:
        assert f"install: browser: {browser} (found on PATH)" in said, said
    else:
        assert any(line.startswith("install: browser: skipped (") for line in said), said
    assert any(line.startswith("install: real server: skipped (") for line in said), said
    # the venv is the user's, and the package is in it
    assert (repo / ".venv" / "bin" / "llm-users").stat().st_uid == pwd.getpwnam(USER).pw_uid
    check = subprocess.run(
        [_runuser(), "-u", USER, "--", str(repo / ".venv/bin/python"), "-c", "import torch"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert check.returncode != 0  # the skip is real: no torch was installed
