"""The image of deploy/Dockerfile without Docker: its build and install steps, run in a clean
venv outside the repository (the wheel test and the deploy test share the result)."""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH (it would point back at the repository's sources), nothing online."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return {**env, **offline, **extra}


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


@dataclass
class Image:
    wheel: Path
    bin: Path  # the venv's bin folder: the image's PATH
    entrypoint: list[str]
    user: str
    exposed: list[str]


def _pip(python: str, words: list[str], drop: tuple[str, ...] = ()) -> list[str]:
    assert words[0] == "pip", words
    return [python, "-m", "pip", *(w for w in words[1:] if w not in drop)]


def build(base: Path) -> Image:
    """Run the Dockerfile's steps: COPY and `pip wheel` of the build stage, then `pip install`
    of the wheel into a fresh venv (with the pip cache: no --no-cache-dir here)."""
    steps = instructions()
    stages = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(stages) == 2, "a build stage and the image"
    src, dist = base / "src", base / "dist"
    paths = {"/dist": str(dist)}

    def subst(words: list[str]) -> list[str]:
        out = []
        for w in words:
            for k, v in paths.items():
                if w == k or w.startswith(k + "/"):
                    w = v + w[len(k) :]
            out += sorted(glob.glob(w)) if "*" in w else [w]
        return out

    env = clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    for word, args in steps[stages[0] + 1 : stages[1]]:
        if word == "WORKDIR":
            paths[args] = str(src)
            src.mkdir(parents=True)
        elif word == "COPY":
            *sources, dest = shlex.split(args)
            for s in sources:
                target = src / dest / Path(s).name if dest.endswith("/") else src / dest
                if (ROOT / s).is_dir():
                    shutil.copytree(ROOT / s, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(ROOT / s, target)
        elif word == "RUN":
            cmd = _pip(sys.executable, subst(shlex.split(args)))
            proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
            assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    (wheel,) = dist.glob("llm_users-*.whl")

    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    entrypoint: list[str] = []
    user, exposed = "root", []
    for word, args in steps[stages[1] + 1 :]:
        if word == "RUN":
            for part in args.split("&&"):
                words = subst(shlex.split(part))
                if words[0] != "pip":
                    continue  # useradd, rm: nothing to do in a venv
                cmd = _pip(python, words, drop=("--no-cache-dir",)) + ["--no-compile"]
                proc = subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True)
                assert proc.returncode == 0, f"{part}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        elif word == "ENTRYPOINT":
            entrypoint = json.loads(args)
        elif word == "USER":
            user = args
        elif word == "EXPOSE":
            exposed = args.split()
    return Image(wheel, env_dir / "bin", entrypoint, user, exposed)
