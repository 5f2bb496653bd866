"""The README's quick start, run as written: its simulator, then its run command, streaming."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

PORT = "9997"  # the port the README names; the test swaps in a free one


def _quick_start_commands() -> list[list[str]]:
    """The `llm-users` lines of the README's first fenced block after "## Quick start"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Quick start\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "no bash block in the quick start"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "llm-users":
            commands.append(words)
    return commands


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _cli(words: list[str]) -> list[str]:
    """`llm-users ...` as this checkout's module (the venv's script may be another checkout)."""
    return [sys.executable, "-m", "llm_users.cli", *words[1:]]


def test_the_readme_quick_start_runs_as_written_and_streams(tmp_path):
    commands = _quick_start_commands()
    assert [c[1] for c in commands] == ["simulator", "run"], commands
    simulator, run = commands
    assert simulator[-1] == "&"  # started in the background, as a reader would
    assert any(PORT in w for w in run), "the run command must use the simulator's port"
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    sim = subprocess.Popen(
        [*_cli(simulator[:-1]), "--port", port],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert sim.stdout is not None
        assert sim.stdout.readline().strip() == f"listening on http://127.0.0.1:{port}"
        words = [w.replace(PORT, port) for w in run]
        # A short bound: Locust's -t given last wins over the README's minute.
        proc = subprocess.run(
            [*_cli(words), "-t", "3s", "--summary-json", str(tmp_path / "s.json")],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"^Average First token latency: [0-9.]+ ms$", proc.stdout, re.MULTILINE)
    summary = (tmp_path / "s.json").read_text()
    assert '"mode":"streaming"' in summary.replace(" ", "")
