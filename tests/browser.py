"""Which Chrome/Chromium the browser tests drive: the one scripts/install-browser.sh chose."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = "LLM_USERS_BROWSER"
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def browser_path() -> str | None:
    """$LLM_USERS_BROWSER, else the browser-path file of the running venv or of the repository's
    .venv (written by `make install`), else a chrome/chromium on PATH; None when there is none."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    for file in (Path(sys.prefix) / "browser-path", ROOT / ".venv" / "browser-path"):
        if file.is_file() and (path := file.read_text().strip()) and os.access(path, os.X_OK):
            return path
    return next((p for n in NAMES if (p := shutil.which(n))), None)


def require_browser() -> str:
    """The browser's path; without one, skip with the reason (a failure under CI=true)."""
    path = browser_path()
    if path is not None and os.access(path, os.X_OK):
        return path
    reason = (
        "no Chrome/Chromium: scripts/install-browser.sh found none (see `make install`)"
        if path is None
        else f"${ENV} is not an executable: {path!r}"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires a browser: {reason}", pytrace=False)
    pytest.skip(reason)
