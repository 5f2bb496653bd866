"""The options of a run as recorded in its summary JSON (secrets redacted), and back to a
command line: ``llm-users run --from-summary S.json`` reruns the same settings."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .declare import boolean, declared
from .settings import Settings

__all__ = ["REDACTED", "from_summary", "recorded_options", "split_from_summary", "to_args"]

REDACTED = "(redacted)"
# Header names whose values are credentials: kept out of the summary like --api-key.
_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "api-key", "token", "secret")
# Locust's own options that shape the load: parsed-options attribute -> its flag.
_LOCUST = {"headless": "--headless", "num_users": "-u", "spawn_rate": "-r", "run_time": "-t"}


def _header(raw: str) -> str:
    name, sep, _ = str(raw).partition(":")
    if sep and any(word in name.strip().lower() for word in _SECRET_HEADERS):
        return f"{name.strip()}: {REDACTED}"
    return str(raw)


def _plain(value: Any) -> Any:
    """A JSON value: a str subclass (Secret) as a plain str, lists as lists."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def recorded_options(opts: Any) -> dict[str, Any]:
    """Every plugin option as given for this run (config file, environment, command line,
    web form), by its config-file key, then Locust's load options; secrets never appear."""
    out: dict[str, Any] = {}
    for _, o in declared(Settings):
        value = getattr(opts, o.dest, o.default)
        if o.secret:
            given = getattr(value, "value", None) or str(value or "")
            out[o.dest] = REDACTED if given else ""
        elif o.dest == "header":
            out[o.dest] = [_header(h) for h in (value if isinstance(value, list) else [value])]
        else:
            out[o.dest] = _plain(value)
    for dest in _LOCUST:
        out[dest] = _plain(getattr(opts, dest, None))
    return out


def to_args(options: dict[str, Any]) -> list[str]:
    """Command-line options that give the recorded ``options`` again; defaults, secrets and
    unknown keys are left out (the key comes from the environment, as before)."""
    by_dest = {o.dest: o for _, o in declared(Settings)}
    args: list[str] = []
    for dest, value in options.items():
        if dest in _LOCUST:
            if isinstance(value, bool):
                args += [_LOCUST[dest]] if value else []
            elif value is not None:
                args += [_LOCUST[dest], str(value)]
            continue
        o = by_dest.get(dest)
        if o is None or o.secret or value is None or value == o.default:
            continue
        if isinstance(o.default, bool):
            on = boolean(value)  # the web form gives "true" / "false"
            if on != o.default:
                args.append(o.flag if on else "--no-" + o.flag[2:])
        elif isinstance(o.default, list):
            for item in value if isinstance(value, list) else [value]:
                if REDACTED not in str(item):
                    args.append(f"{o.flag}={item}")
        else:
            args.append(f"{o.flag}={value}")
    return args


def from_summary(path: str) -> list[str]:
    """The command-line options recorded in summary JSON ``path``, or a ConfigError."""
    import orjson

    try:
        with open(path, "rb") as f:
            summary = orjson.loads(f.read())
    except OSError as exc:
        raise ConfigError(f"--from-summary: cannot read {path!r}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--from-summary: {path!r} is not JSON ({exc})") from None
    options = summary.get("options") if isinstance(summary, dict) else None
    if not isinstance(options, dict):
        raise ConfigError(
            f"--from-summary: {path!r} records no options (written by an older llm-users?)"
        )
    args = to_args(options)
    host = summary.get("host")
    return ["--host", str(host), *args] if host else args


def split_from_summary(args: list[str]) -> tuple[str | None, list[str]]:
    """(the summary named by ``--from-summary PATH`` or ``--from-summary=PATH``, other args)."""
    rest: list[str] = []
    path: str | None = None
    it = iter(args)
    for arg in it:
        if arg == "--from-summary":
            path = next(it, None)
            if path is None:
                raise ConfigError("--from-summary needs the path of a summary JSON")
        elif arg.startswith("--from-summary="):
            path = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return path, rest
