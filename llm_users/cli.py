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
    "apply, e.g. `llm-users run --headless -u 4 --host URL --stream`; -f FILE uses yours",
    "simulator": "run the built-in simulated OpenAI-compatible server (as `llm-simulator`)",
    "compare": "compare summary JSON files of several runs (`llm-users compare --help`)",
}


def _has_locustfile(args: Sequence[str]) -> bool:
    """Whether the user named a locustfile (``-f``/``--locustfile`` or LOCUST_LOCUSTFILE)."""
    if os.environ.get("LOCUST_LOCUSTFILE"):
        return True
    return any(
        a in ("-f", "--locustfile") or a.startswith("--locustfile=") or a.startswith("-f")
        for a in args
    )


def run(args: list[str]) -> int:
    """``locust -f <bundled locustfile> ARGS`` in this process (Locust exits by itself)."""
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


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": run,
    "simulator": simulator,
    "compare": compare,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-users",
        description="Load-test OpenAI-compatible LLM servers with Locust: TTFT, ITL, TPOT, E2E.",
        epilog="Arguments after COMMAND go to it (`llm-users simulator --help`); the plugin's "
        "options are in README.md.",
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
