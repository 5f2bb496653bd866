"""Which Chrome/Chromium the browser tests drive: the one scripts/install-browser.sh chose."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


# As root, in a sandbox with no network: no sandboxing, no GPU, and none of the background
# connections Chromium makes at start (refused here, many at a time).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium_context(chromium: str, tmp_path: Path, **kw: Any) -> Iterator[Any]:
    """A headless browser context with a fresh profile under ``tmp_path``; closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            tempfile.mkdtemp(dir=tmp_path),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            **kw,
        )
        try:
            yield ctx
        finally:
            ctx.close()
