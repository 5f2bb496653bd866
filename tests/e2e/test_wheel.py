"""The wheel on its own: built from the sources and installed with its dependencies into a
clean venv outside the repository, by deploy/Dockerfile's own steps (tests/e2e/image.py);
`llm-users run` (the bundled locustfile) and the docs' own-user example work there."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from llm_users.simulator import SimulatorProcess
from tests.e2e.image import Image, clean_env
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

SEED_STREAMING = (
    "Average First token latency: ",
    "Average follow latency: ",
    "Average follow tokens: ",
    "Follow throughput: ",
)


def test_the_wheel_holds_the_web_page_and_the_bundled_locustfile(image: Image) -> None:
    wheel = image.wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    webui = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "llm_users/webui").rglob("*") if p.is_file()
    )
    assert webui and set(webui) <= names, set(webui) - names
    assert "llm_users/locustfile.py" in names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "llm-users = llm_users.cli:main" in scripts


def test_llm_users_run_outside_the_repository(image: Image, tmp_path: Path) -> None:
    bin_dir = image.bin
    with SimulatorProcess(ttft_ms=20, itl_ms=2, output_tokens=12) as sim:
        proc = subprocess.run(
            [str(bin_dir / "llm-users"), "run", "--headless", "-u", "2", "--stream"]
            + ["--requests-per-user", "3", "--host", sim.url],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=tmp_path,  # no locustfile.py here, no repository
            env=clean_env(),
            stdin=subprocess.DEVNULL,
        )
        completed = sim.stats()["completed"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    dashes = lines.index("-" * 50)
    seed = lines[dashes + 1 : dashes + 5]
    assert [line.startswith(p) for line, p in zip(seed, SEED_STREAMING, strict=True)] == [True] * 4
    assert seed[2] == "Average follow tokens: 11.0"  # 12 tokens, the first is not "follow"
    assert completed == 6
    # the package that ran is the installed one, not the repository's sources
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import llm_users; print(llm_users.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
    ).stdout
    assert where.startswith(str(bin_dir.parent)), where


def _docs_example() -> str:
    text = (ROOT / "docs" / "getting-started.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    (code,) = (b for b in blocks if "(BaseLLMUser)" in b and "def next_request" in b)
    return code


def test_docs_own_user_example_runs_with_locust_f(image: Image, tmp_path: Path) -> None:
    bin_dir = image.bin
    (tmp_path / "my_locustfile.py").write_text(_docs_example())
    with SimulatorProcess(ttft_ms=5, itl_ms=1) as sim:
        proc = subprocess.run(
            [str(bin_dir / "locust"), "-f", "my_locustfile.py", "--headless", "-u", "2"]
            + ["-r", "2", "--requests-per-user", "3", "--host", sim.url, "--stream"]
            + ["--header", "X-Team: perf"],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
        )
        records = sim.records()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(records) == 6 and all(r["completed"] for r in records)
    # the example's own budget and its three tickets, not the defaults (128, the seed prompt)
    assert {r["max_tokens"] for r in records} == {32}
    assert len({r["prompt_tokens"] for r in records}) == 3
