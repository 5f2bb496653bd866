"""Fixtures of the subprocess tests: the Dockerfile's image, built once per session."""

from __future__ import annotations

import pytest

from tests.e2e.image import Image, build


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The wheel, installed with its dependencies in a clean venv as deploy/Dockerfile does."""
    return build(tmp_path_factory.mktemp("image"))
