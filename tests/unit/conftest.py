"""Fixtures of the unit tests: one fast simulator per test module, reset for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_users.simulator import SimConfig, SimulatorProcess

FAST = {"ttft_ms": 5.0, "itl_ms": 2.0}


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(**FAST) as sim:
        yield sim


@pytest.fixture
def sim(server: SimulatorProcess) -> SimulatorProcess:
    """The shared simulator, back to defaults (fast timings) with fresh records."""
    server.configure(**{**SimConfig().to_dict(), **FAST})
    server.reset()
    return server
