"""The package's shape: no import cycles, plugin.py is wiring, modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "llm_users"
LONG_OK = "reads better whole"  # a module over the limit says why in its docstring


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules of the package imported when this one is imported (not TYPE_CHECKING, not
    inside functions: those are deliberate, lazy imports)."""
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.ClassDef) else []:
            if isinstance(sub, ast.ImportFrom):
                if sub.level:
                    base = package.split(".")
                    base = base[: len(base) - sub.level + 1]
                    mod = ".".join([*base, sub.module] if sub.module else base)
                else:
                    mod = sub.module or ""
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


def test_no_import_cycles() -> None:
    graph = _graph()
    assert "llm_users.plugin" in graph and graph["llm_users.plugin"], "the graph is empty"
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
    assert "llm_users.context" in graph["llm_users.plugin"]
    assert "llm_users.options" in graph["llm_users.context"]


def test_plugin_is_wiring_only() -> None:
    lines = (PKG / "plugin.py").read_text().count("\n")
    assert lines <= 200, f"plugin.py has {lines} lines: move the work into a module of its own"


def test_long_modules_say_why() -> None:
    for path in PKG.rglob("*.py"):
        lines = path.read_text().count("\n")
        doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
        if lines > 400:
            assert LONG_OK in doc, f"{path.name}: {lines} lines and no reason in its docstring"
