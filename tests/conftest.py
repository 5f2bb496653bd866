"""Shared fixtures: the built-in simulator as a subprocess, a locally built tokenizer."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import locust  # noqa: F401  (gevent monkey-patching first, before anything imports ssl/requests)
import pytest

from llm_users.simulator import SimulatorProcess, save_tokenizer

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's vocabulary as a Hugging Face tokenizer folder: 1 simulated token = 1."""
    path = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(path)
    return path


@pytest.fixture
def simulator() -> Iterator[Callable[..., SimulatorProcess]]:
    """Factory: ``sim = simulator(ttft_ms=..., ...)`` starts one; all are stopped at the end."""
    started: list[SimulatorProcess] = []

    def start(**knobs: object) -> SimulatorProcess:
        sim = SimulatorProcess(**knobs).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
