"""``llm-users``: one command for the package's tools (Locust with the bundled locustfile,
the simulator, the comparison of runs); each subcommand passes its arguments through."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__

LOCUSTFILE = Path(__file__).with_name("locustfile.py")

_HELP = {
    "run": "run Locust with the bundled locustfile (LLMUser); all Locust and plugin options "
    "apply, e.g. `llm-users run --headless -u 4 -t 30s --host URL`; -f FILE uses yours; "
    "`llm-users run --help` lists them all; --from-summary S.json reruns a run's settings",
    "options": "print the plugin's options as a table: flag, default, environment variable, "
    "an example",
    "simulator": "run the built-in simulated OpenAI-compatible server (as `llm-simulator`)",
    "compare": "compare the summary JSON files of two or more runs: differing settings first, "
    "then the headline figures (`llm-users compare --help`)",
}


def _has_locustfile(args: Sequence[str]) -> bool:
    """Whether the user named a locustfile (``-f``/``--locustfile`` or LOCUST_LOCUSTFILE)."""
    if os.environ.get("LOCUST_LOCUSTFILE"):
        return True
    return any(
        a in ("-f", "--locustfile") or a.startswith("--locustfile=") or a.startswith("-f")
        for a in args
    )


def _wants_help(args: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") for a in args)


def _print_run_help(locust_args: list[str]) -> int:
    """Locust's --help with the plugin's options under their group titles.

    Locust prints its help before it imports a locustfile, so the options a locustfile
    registers never show there; register ours on the parser hook first, then ask for help.
    """
    import locust
    from locust.argument_parser import get_parser

    from .options.settings import add_arguments

    locust.events.init_command_line_parser.add_listener(add_arguments)
    try:
        get_parser().parse_args([*locust_args, "--help"])
    except SystemExit as exc:  # argparse ends --help with exit 0
        if exc.code not in (0, None):
            return exc.code if isinstance(exc.code, int) else 2
    print(
        "\nllm-users run only:\n  --from-summary S.json  rerun with the settings recorded in "
        "a run's summary JSON\n                        (options given after it win)"
    )
    return 0


def run(args: list[str]) -> int:
    """``locust -f <bundled locustfile> ARGS`` in this process (Locust exits by itself)."""
    if _wants_help(args):
        return _print_run_help([a for a in args if a not in ("-h", "--help")])
    from .errors import ConfigError
    from .options.recorded import from_summary, split_from_summary

    try:
        path, args = split_from_summary(args)
        if path is not None:  # the recorded settings first: explicit args after them win
            args = [*from_summary(path), *args]
    except ConfigError as exc:
        print(f"llm-users: error: {exc}", file=sys.stderr)
        return 2
    locust_args = list(args) if _has_locustfile(args) else ["-f", str(LOCUSTFILE), *args]
    sys.argv = ["locust", *locust_args]
    from locust.main import main as locust_main

    locust_main()
    return 0


def simulator(args: list[str]) -> int:
    from .simulator.__main__ import main as simulator_main

    return simulator_main(args)


def compare(args: list[str]) -> int:
    if importlib.util.find_spec("llm_users.report.compare") is None:
        print(
            f"llm-users: error: 'compare' is not available in llm-users {__version__} "
            "(no module llm_users.report.compare)",
            file=sys.stderr,
        )
        return 2
    main: Callable[..., int | None] = importlib.import_module("llm_users.report.compare").main
    if inspect.signature(main).parameters:
        return main(args) or 0
    sys.argv = ["llm-users compare", *args]
    return main() or 0


def options(args: list[str]) -> int:
    """The plugin's options, one table per group: flag, default, environment variable, example."""
    parser = argparse.ArgumentParser(prog="llm-users options", description=_HELP["options"])
    parser.parse_args(args)
    from .options.declare import GROUPS, declared
    from .options.examples import EXAMPLES
    from .options.settings import Settings

    by_group: dict[str, list[list[str]]] = {key: [] for key in GROUPS}
    for _, o in declared(Settings):
        flag = o.flag + (" {" + ",".join(o.choices) + "}" if o.choices else "")
        by_group[o.group].append([flag, o.default_text, o.env_var, EXAMPLES.get(o.flag, "")])
    head = ["option", "default", "environment variable", "example"]
    rows = [head, *(r for group in by_group.values() for r in group)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1]

    out = [
        "Every option is also a LOCUST_* variable and a config-file key (the flag without --).",
        "Help for each: llm-users run --help.",
        "",
    ]
    for key, title in GROUPS.items():
        if by_group[key]:
            out += [title, line(head).rstrip(), *(line(r).rstrip() for r in by_group[key]), ""]
    try:
        print("\n".join(out).rstrip(), flush=True)
    except BrokenPipeError:  # `llm-users options | head`: quiet, as other tools are
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": run,
    "options": options,
    "simulator": simulator,
    "compare": compare,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-users",
        description="Load-test OpenAI-compatible LLM servers with Locust: TTFT, ITL, TPOT, E2E.",
        epilog="Arguments after COMMAND go to it (`llm-users simulator --help`); the plugin's "
        "options: `llm-users options` or `llm-users run --help`.",
    )
    parser.add_argument("--version", action="version", version=f"llm-users {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, text in _HELP.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in COMMANDS:
        return COMMANDS[args[0]](args[1:])
    _parser().parse_args(args)  # --help, --version, or an error naming the choices (exit 2)
    return 2


if __name__ == "__main__":
    sys.exit(main())
