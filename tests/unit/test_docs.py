"""The README stays short, the docs' links resolve, the generated reference pages cover the
code, and the site builds with ``mkdocs --strict``."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from llm_users.measure.figures import FIGURES
from llm_users.options.declare import GROUPS, declared
from llm_users.options.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README_LIMIT = 10 * 1024  # bytes: the README is the five-minute read, the rest is in docs/

# [text](target) and ![alt](target), not inside code spans or fences
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _hook() -> ModuleType:
    """docs/hooks/generate.py, loaded by path (docs/ is no package)."""
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "hooks" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _relative_links(md: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", md.read_text(), flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = (t.split("#", 1)[0] for t in LINK.findall(text))
    return [t for t in targets if t and not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)


def test_readme_is_at_most_10_kib() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail to docs/"


def test_readme_links_point_to_files() -> None:
    # the README is read on the forge and the package index: only real files, no generated pages
    missing = [t for t in _relative_links(ROOT / "README.md") if not (ROOT / t).exists()]
    assert not missing, missing


def test_docs_links_point_to_files_or_generated_pages() -> None:
    generated = {DOCS / p for p in _hook().GENERATED}
    missing = []
    for page in _pages():
        for target in _relative_links(page):
            path = (page.parent / target).resolve()
            if not path.exists() and path not in generated:
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert not missing, missing


def test_options_page_has_every_flag_and_env_var() -> None:
    hook = _hook()
    page = hook.options_markdown()
    options = [o for _, o in declared(Settings)]
    assert options
    for o in options:
        assert f"`{o.flag}" in page, o.flag
        assert f"`{o.env_var}`" in page, o.env_var
    for title in GROUPS.values():
        assert f"## {title}" in page


def test_options_page_shows_no_secret_default() -> None:
    hook = _hook()
    secret = [o for _, o in declared(Settings) if o.secret]
    assert secret, "no secret option to check"
    rows = [line for line in hook.options_markdown().splitlines() if "--api-key" in line]
    assert rows and all("(secret)" in row for row in rows)


def test_figures_page_has_every_label() -> None:
    hook = _hook()
    page = hook.figures_markdown()
    assert FIGURES
    for f in FIGURES:
        assert f"| {f.label} |" in page, f.label
        assert f"`{f.key}`" in page, f.key


def test_python_api_page_has_every_public_name() -> None:
    import llm_users

    page = _hook().python_api_markdown()
    for name in llm_users.__all__:
        assert f"| `{name}` |" in page, name
    from llm_users.plugin.events import LLMEvents

    hooks = list(LLMEvents.__annotations__)
    assert hooks and all(f"### `{name}`\n\nFired " in page for name in hooks)
    assert "- `ttft_ms`: its time to first token, in ms" in page  # the hook's arguments


def test_site_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")  # test-pythons' venvs install test-core only
    mkdocs = Path(sys.executable).with_name("mkdocs")
    cmd = [str(mkdocs)] if mkdocs.exists() else [shutil.which("mkdocs") or "mkdocs"]
    done = subprocess.run(
        [*cmd, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for page in ("reference/options", "reference/figures", "reference/python-api"):
        assert (tmp_path / "site" / page / "index.html").exists(), page


def test_the_modules_page_lists_every_module_with_its_job() -> None:
    page = _hook().modules_markdown()
    modules = sorted((ROOT / "llm_users").rglob("*.py"))
    assert len(modules) > 80
    for path in modules:
        if path.parent.name in ("vendor",) or path.parent.parent.name == "simulator":
            continue
        rows = [line for line in page.splitlines() if line.startswith(f"| `{path.name}` |")]
        assert rows, f"{path.relative_to(ROOT)} is not on the modules page"
    # each row says something: every module has a docstring
    empty = [line for line in page.splitlines() if line.startswith("| `") and line.endswith("|  |")]
    assert not empty, empty
