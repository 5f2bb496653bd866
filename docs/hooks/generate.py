"""MkDocs hook: the reference pages that are read off the code, written at each build.

``reference/options.md`` (every declared option), ``reference/figures.md`` (the figure
registry) and ``reference/python-api.md`` (``llm_users.__all__``) are not files in docs/:
they are added to the build as generated files, so they cannot drift from the code. Each page
is one function returning Markdown, so a test can call it without MkDocs.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# This checkout's package, not whatever the venv has installed in editable mode elsewhere.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# None of these imports Locust (which monkey-patches the interpreter with gevent).
from llm_users.measure.figures import FIGURES  # noqa: E402
from llm_users.options.declare import GROUPS, declared  # noqa: E402
from llm_users.options.examples import EXAMPLES  # noqa: E402
from llm_users.options.settings import Settings  # noqa: E402

# -- the pages --------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    """One table cell: pipes escaped, lines joined."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: Any) -> str:
    return f"`{text}`" if str(text) != "" else ""


def _default(o: Any) -> str:
    text = o.default_text
    return text if o.secret or isinstance(o.default, bool) else _code(text)


def options_markdown() -> str:
    """Every option declared on ``Settings``, one table per group in ``--help`` order."""
    examples = EXAMPLES
    by_group: dict[str, list[Any]] = {key: [] for key in GROUPS}
    for _, o in declared(Settings):
        by_group[o.group].append(o)
    out = [
        "# Options",
        "",
        "Generated from the declarations in `llm_users/options` at each build of these pages.",
        "Every option is a Locust option: a command-line flag, a `LOCUST_*` environment",
        "variable, a config-file key (the flag without `--`) and, where the *web* column says",
        "so, a field of the web UI's start form. A bad value is refused before the test with",
        "one line naming the option, and exit code 2.",
        "",
        "With an example for each: [options by example](options-by-example.md).",
        "",
    ]
    for key, title in GROUPS.items():
        if not by_group[key]:
            continue
        out += [f"## {title}", "", "| option | env var | default | web | help | example |"]
        out.append("| --- | --- | --- | --- | --- | --- |")
        for o in by_group[key]:
            flag = o.flag + (f" {{{','.join(o.choices)}}}" if o.choices else "")
            web = "yes" if o.web else "no"
            example = _cell(_code(examples.get(o.flag, "")))
            row = [_code(flag), _code(o.env_var), _default(o), web, _cell(o.help), example]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def figures_markdown() -> str:
    """The registry of reported figures, in its own (reading) order."""
    out = [
        "# Figures",
        "",
        "Generated from the registry `FIGURES` (`llm_users/measure/figures.py`) at each build.",
        "Every output (console table, JSON, web UI tab and `/llm` page, HTML report, CSV) reads",
        "its labels from there. What each figure means: [what is measured](definitions.md).",
        "",
        "*kind*: `scalar` (one number), `distribution` (count, mean, p50, p90, p95, p99, max),",
        "`seed` (the original benchmark script's summary lines). *SLO*: may be an `--slo` key.",
        "",
        "| label | JSON key | unit | kind | runs | digits | SLO | notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in FIGURES:
        notes = []
        if f.long and f.long != f.label:
            notes.append(f"console: {f.long}")
        if f.open_loop:
            notes.append("open loop only")
        if f.cache:
            notes.append("prefix-cache runs only")
        if f.about:
            notes.append(f.about)
        digits = "-" if f.digits is None else str(f.digits)
        row = [f.label, _code(f.key), f.unit, f.kind, f.mode, digits, "yes" if f.slo else ""]
        out.append("| " + " | ".join(_cell(c) for c in [*row, "; ".join(notes)]) + " |")
    out.append("")
    return "\n".join(out)


def _markdown(rest: str) -> str:
    """Docstring text on one line, its reST roles and double backquotes made Markdown."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", " ".join(rest.split()))
    return text.replace("``", "`")


def _first_paragraph(obj: Any) -> str:
    """The docstring's first paragraph, as Markdown."""
    doc = inspect.getdoc(obj) or ""
    return _markdown(doc.split("\n\n", 1)[0])


def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return "value"


def python_api_markdown() -> str:
    """``llm_users.__all__``: each name, what it is and its docstring's first paragraph.

    It imports the package's public objects, Locust with them (which monkey-patches the
    interpreter with gevent): the hook calls it in a child process for that reason.
    """
    pkg = importlib.import_module("llm_users")
    out = [
        "# Python API",
        "",
        "Generated from `llm_users.__all__` at each build: the names a locustfile may import",
        "(`from llm_users import BaseLLMUser, register`), each with the first paragraph of its",
        "docstring. Writing your own user:",
        "[getting started](../getting-started.md#write-your-own-user).",
        "",
        "| name | kind | what it is |",
        "| --- | --- | --- |",
    ]
    for name in pkg.__all__:
        obj = getattr(pkg, name)
        out.append(f"| `{name}` | {_kind(obj)} | {_cell(_first_paragraph(obj))} |")
    out += ["", *events_markdown()]
    return "\n".join(out)


def _hook_docs(path: Path, cls: str) -> dict[str, str]:
    """A class's attribute docstrings (the string under each annotated attribute, as Locust
    documents its ``Events``): they exist only in the source, so it is read, not imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    docs: dict[str, str] = {}
    for stmt, after in pairwise(node.body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def events_markdown() -> list[str]:
    """The plugin's events, each with when it fires and its arguments (``LLMEvents``)."""
    out = [
        "## Events",
        "",
        "Declared by `LLMEvents` (`llm_users/plugin/events.py`) and attached to",
        "`environment.events` beside Locust's own; listen as to any Locust event:",
        "`environment.events.llm_request.add_listener(handler)`. Each fires once per finished",
        "request that counts (not warm-up ones), in the user's greenlet: keep listeners quick.",
        "",
    ]
    for name, doc in _hook_docs(ROOT / "llm_users" / "plugin" / "events.py", "LLMEvents").items():
        text, *params = doc.split(":param ")
        out += [f"### `{name}`", "", _markdown(text), ""]
        for param in params:
            arg, _, what = param.partition(":")
            out.append(f"- `{arg.strip()}`: {_markdown(what)}")
        out.append("")
    return out


def _python_api_isolated() -> str:
    """python_api_markdown() in a child process: MkDocs' own process stays unpatched."""
    code = "import generate, sys; sys.stdout.write(generate.python_api_markdown())"
    env_path = os.pathsep.join([str(Path(__file__).parent), str(ROOT)])
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": env_path},
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python-api page: {done.stderr.strip()[-2000:]}")
    return done.stdout


# path in docs/ -> the function that writes it (the hook's; the tests read this too)
_ROLES = {
    "": "the shared vocabulary and the entry points",
    "options": "each option declared once, validated into one Settings",
    "wire": "one request, no Locust",
    "workload": "what is sent and when, no Locust",
    "measure": "records into mergeable figures, no gevent, no Locust",
    "report": "snapshots into people's and machines' outputs",
    "servermetrics": "a server's own /metrics, scraped and read",
    "webui": "the plugin in Locust's web UI",
    "plugin": "the composition root inside Locust",
    "simulator": "the built-in simulated server; imports nothing of the plugin",
}


def modules_markdown() -> str:
    """Every module of the package with the first sentence of its docstring, by folder, in
    the layers' order: the file list, read off the code at each build."""
    pkg = ROOT / "llm_users"
    out = [
        "# Modules",
        "",
        "Generated from the package at each build of these pages: every module, by folder in",
        "the order of the layers ([architecture](architecture.md)), with the first sentence of",
        "its docstring.",
        "",
    ]
    for folder, role in _ROLES.items():
        here = pkg / folder if folder else pkg
        title = f"`llm_users/{folder}/`" if folder else "`llm_users/`"
        out += [f"## {title}", "", role[0].upper() + role[1:] + ".", "", "| module | its job |"]
        out.append("| --- | --- |")
        for path in sorted(here.glob("*.py")):
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            first = " ".join(doc.split("\n\n", 1)[0].split())
            out.append(f"| `{path.name}` | {_cell(first)} |")
        out.append("")
    return "\n".join(out)


GENERATED: dict[str, Callable[[], str]] = {
    "development/modules.md": modules_markdown,
    "reference/options.md": options_markdown,
    "reference/figures.md": figures_markdown,
    "reference/python-api.md": _python_api_isolated,
}


# -- MkDocs events ----------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, render in GENERATED.items():
        files.append(File.generated(config, path, content=render()))
    return files
