"""The package's shape: folders by role, no import cycles, no private names imported across
modules, the wiring stays wiring, modules stay small (the long ones are listed with why),
and the public API is pinned. The layers themselves are import-linter's contracts
(``.importlinter``, run by ``make lint``); :func:`test_the_layer_contracts_hold` runs it too."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "llm_users"
# The only modules directly under llm_users/: the shared vocabulary and the entry points.
TOP_LEVEL = {"__init__", "errors", "record", "role", "cli", "demo", "locustfile"}
SUBPACKAGES = {
    "options",
    "wire",
    "workload",
    "measure",
    "report",
    "plugin",
    "webui",
    "servermetrics",
    "simulator",
}
MAX_LINES = 400
# Modules allowed past MAX_LINES, each with its reason (a new one must argue its case here).
LONG = {
    "llm_users/options/settings.py": "the table of every option, one declaration each: a "
    "reader looks an option up in one list, in --help's order",
    "llm_users/report/html.py": "one self-contained page: its template, styles and charts "
    "are read together; splitting them scatters one page over files",
    "llm_users/wire/client.py": "the read path of one request (send, read, stamp, classify) "
    "is one loop whose steps share per-request state",
    "llm_users/wire/endpoints.py": "every endpoint's request and event shapes side by side, "
    "so that the endpoints can be compared line by line",
    "llm_users/simulator/server.py": "the simulator's routes with their fault modes: one "
    "place that says what the simulated server answers",
}
PUBLIC_API = [
    "Aggregate",
    "BaseLLMUser",
    "ConfigError",
    "FailureKind",
    "Histogram",
    "LLMEvents",
    "LLMPlugin",
    "LLMUser",
    "LLMUsersError",
    "PreflightError",
    "RequestRecord",
    "RequestResult",
    "SSEEvent",
    "SSEParser",
    "Settings",
    "add_arguments",
    "plugin_of",
    "register",
    "setup",
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _runtime_imports(path: Path) -> set[str]:
    """Modules of the package imported when this one is imported (not TYPE_CHECKING, not
    inside functions: those are deliberate, lazy imports)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.ClassDef) else []:
            if isinstance(sub, ast.ImportFrom):
                mod = _resolve(path, sub)
                if mod.startswith("llm_users"):
                    out.add(mod)
                    out.update(f"{mod}.{a.name}" for a in sub.names)
            elif isinstance(sub, ast.Import):
                out.update(a.name for a in sub.names if a.name.startswith("llm_users"))
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    return {
        name: {m for m in _runtime_imports(path) if m in files and m != name}
        for name, path in files.items()
    }


def test_folders_by_role() -> None:
    top = {p.stem for p in PKG.glob("*.py")}
    assert top == TOP_LEVEL, f"modules directly under llm_users/: {sorted(top - TOP_LEVEL)}"
    subs = {p.parent.name for p in PKG.glob("*/__init__.py")}
    assert subs == SUBPACKAGES


def test_no_import_cycles() -> None:
    graph = _graph()
    assert graph["llm_users.plugin.wiring"], "the graph is empty"
    seen: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)


def test_the_graph_holds_the_real_imports() -> None:
    """Relative imports resolve to the modules they name (else no cycle could ever be seen)."""
    graph = _graph()
    assert "llm_users.plugin.context" in graph["llm_users.plugin.wiring"]
    assert "llm_users.options.settings" in graph["llm_users.plugin.context"]


def test_no_private_name_is_imported_from_another_module() -> None:
    found = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and _resolve(path, node).startswith("llm_users"):
                private = [
                    a.name for a in node.names if a.name.startswith("_") and a.name[:2] != "__"
                ]
                if private:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {private}")
    assert not found, "private names imported across modules: " + "; ".join(found)


def test_the_wiring_is_wiring_only() -> None:
    # It composes some fifteen parts (each a line or two of set-up and of each event); past
    # 250 lines, work has crept in that belongs in a part of its own.
    lines = (PKG / "plugin" / "wiring.py").read_text().count("\n")
    assert lines <= 250, f"plugin/wiring.py has {lines} lines: move the work into a module"


def test_long_modules_are_listed_with_their_reason() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in PKG.rglob("*.py")
        if (n := p.read_text().count("\n")) > MAX_LINES
    }
    unlisted = sorted(set(long) - set(LONG))
    assert not unlisted, f"over {MAX_LINES} lines and not in LONG: {unlisted}"
    stale = sorted(set(LONG) - set(long))
    assert not stale, f"in LONG but no longer long (remove them): {stale}"


def test_the_public_api_is_pinned() -> None:
    import llm_users

    assert llm_users.__all__ == PUBLIC_API
    for name in PUBLIC_API:
        assert getattr(llm_users, name) is not None


def test_old_import_paths_of_users_locustfiles_still_work() -> None:
    import llm_users
    from llm_users.options import Settings, add_arguments
    from llm_users.plugin import register, setup

    assert Settings is llm_users.Settings and add_arguments is llm_users.add_arguments
    assert register is llm_users.register and setup is llm_users.setup


def test_the_layer_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed (make install)"
    proc = subprocess.run(
        [exe, "--config", str(ROOT / ".importlinter")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "broken" not in proc.stdout.lower() or " 0 broken" in proc.stdout.lower()
