"""Fixtures of the in-process tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_users.simulator import SimulatorProcess


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimulatorProcess]:
    """One simulator per test module, reconfigured by each test (starting one costs ~0.4 s)."""
    with SimulatorProcess() as sim:
        yield sim
