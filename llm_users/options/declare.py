"""One declaration per option: :func:`opt` on a dataclass field, and the value parsers.

The declaration makes the argparse registration, the field's typed default and the check of
a value. A parser turns a raw value (command line, environment, config file, web form) into
the typed one or raises :class:`Invalid`; the option's flag is put in front of its message.
"""

from __future__ import annotations

import argparse
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError

__all__ = [
    "GROUPS",
    "Invalid",
    "Opt",
    "boolean",
    "declared",
    "fraction",
    "non_negative",
    "number",
    "opt",
    "percent",
    "positive",
    "register",
    "stripped",
    "text",
    "whole",
]

# Group key -> title in `locust --help`, in the order they are shown.
GROUPS = {
    "requests": "LLM requests",
    "connection": "LLM connection",
    "prompts": "LLM prompts",
    "load": "LLM load",
    "reports": "LLM figures and reports",
}

_META = "llm_users.option"

Parse = Callable[[Any], Any]


class Invalid(ValueError):
    """A bad value; the message is the rest of the sentence after the option's flag."""


@dataclass(frozen=True)
class Opt:
    """How one settings field is given: as a command-line option, a LOCUST_* variable, a
    config-file key and (``web``) a field of the web UI's start form."""

    default: Any  # as it is given: "on", "0", 128, False, [] (its type makes the argparse kind)
    help: str
    group: str
    parse: Parse
    flag: str = ""  # default: the field's name, --like-this
    choices: tuple[str, ...] | None = None
    web: bool = True
    secret: bool = False

    @property
    def dest(self) -> str:
        """The attribute of Locust's parsed options (and the config-file key)."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env_var(self) -> str:
        """--max-tokens: LOCUST_MAX_TOKENS."""
        return "LOCUST_" + self.dest.upper()

    @property
    def default_text(self) -> str:
        """The default as a reader sees it: on/off, a list joined, never a secret's value."""
        if self.secret:
            return "(secret)"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, list):
            return ", ".join(map(str, self.default))
        return str(self.default)

    def read(self, raw: Any) -> Any:
        """The typed value of ``raw``, or a :class:`ConfigError` naming the flag and the value."""
        try:
            if self.choices is not None:
                value = str(raw).strip()
                if value not in self.choices:
                    wanted = ", ".join(sorted(self.choices))
                    raise Invalid(f"must be one of {wanted}; got {raw!r}")
                raw = value
            return self.parse(raw)
        except Invalid as exc:
            raise ConfigError(f"{self.flag} {exc}") from None

    def argparse_kwargs(self) -> dict[str, Any]:
        """Keywords of Locust's ``parser.add_argument`` for this option."""
        kw: dict[str, Any] = {
            "default": self.default,
            "help": self.help,
            "env_var": self.env_var,
            "include_in_web_ui": self.web,
        }
        if self.secret:
            kw["is_secret"] = True
        if self.choices is not None:
            kw["choices"] = list(self.choices)
        if self.default is True:  # --flag / --no-flag (config files and env vars: true/false)
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(self.default, bool):
            kw["action"] = "store_true"
        elif isinstance(self.default, list):
            kw["action"] = "append"
        elif type(self.default) is not str:
            kw["type"] = type(self.default)  # int, float, or a str subclass such as Secret
        return kw


def opt(
    default: Any,
    *,
    help: str,
    group: str,
    parse: Parse | None = None,
    flag: str = "",
    choices: Any = None,
    web: bool = True,
    secret: bool = False,
) -> Any:
    """A dataclass field declared as an option; its default is ``parse(default)``.

    ``default`` is the value as given on the command line (``"on"``, ``"0"``, ``128``);
    without ``parse`` the value is kept as it comes (a choice, stripped).
    """
    if group not in GROUPS:
        raise ValueError(f"unknown option group {group!r}")
    o = Opt(
        default=default,
        help=help,
        group=group,
        parse=parse or _same,
        flag=flag,
        choices=None if choices is None else tuple(choices),
        web=web,
        secret=secret,
    )
    typed = o.read(default)
    meta = {_META: o}
    if type(typed).__hash__ is None:  # dict, list: a fresh copy for each instance
        return field(default_factory=lambda: copy.copy(typed), metadata=meta, repr=not secret)
    return field(default=typed, metadata=meta, repr=not secret)


def declared(cls: Any) -> Iterator[tuple[str, Opt]]:
    """(field name, its option) for every field of dataclass ``cls`` declared with opt()."""
    f: Field[Any]
    for f in fields(cls):
        o = f.metadata.get(_META)
        if o is not None:
            yield f.name, o if o.flag else replace(o, flag="--" + f.name.replace("_", "-"))


def register(parser: Any, options: list[Opt]) -> None:
    """Add ``options`` to Locust's parser, each listed under its group's title in --help.

    Each is added to the parser itself (Locust's own ``add_argument``: env var, web UI form,
    secret), then moved from the parser's untitled list into a titled group, which only
    changes where --help prints it (argument groups refuse the web UI keywords).
    """
    used = {o.group for o in options}
    groups: dict[str, argparse._ArgumentGroup] = {
        key: parser.add_argument_group(title) for key, title in GROUPS.items() if key in used
    }
    for o in options:
        action = parser.add_argument(o.flag, **o.argparse_kwargs())
        parser._optionals._group_actions.remove(action)
        groups[o.group]._group_actions.append(action)


# -- parsers: raw value -> typed value, or Invalid -------------------------------------------


def _same(value: Any) -> Any:
    return value


def text(value: Any) -> str:
    return str(value or "")


def stripped(value: Any) -> str:
    return str(value or "").strip()


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off", "none"):
        return False
    raise Invalid(f"must be true or false, got {value!r}")


def whole(value: Any) -> int:
    """A whole number >= 0."""
    try:
        n = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        raise Invalid(f"must be a whole number, got {value!r}") from None
    if n < 0:
        raise Invalid(f"must be >= 0, got {n}")
    return n


_UNITS = {"": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 10**6, "mb": 10**6, "mib": 1024**2,
          "g": 10**9, "gb": 10**9, "gib": 1024**3}  # fmt: skip


def size(value: Any) -> int:
    """A size in bytes > 0: ``65536``, ``64KiB``, ``8MiB``, ``1GiB``."""
    text = str(value).strip().replace(" ", "")
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    unit = _UNITS.get(text[len(digits) :].lower())
    try:
        n = int(float(digits) * unit) if unit is not None else -1
    except ValueError:
        n = -1
    if n <= 0:
        raise Invalid(f"must be a size in bytes > 0 such as 65536, 64KiB or 8MiB, got {value!r}")
    return n


def number(value: Any) -> float:
    """Any finite number (NaN passes every later "< 0" check; inf is no duration)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise Invalid(f"must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise Invalid(f"must be a finite number, got {value!r}")
    return x


def positive(value: Any) -> float:
    x = number(value)
    if not x > 0:
        raise Invalid(f"must be > 0, got {value!r}")
    return x


def non_negative(value: Any) -> float:
    x = number(value)
    if x < 0:
        raise Invalid(f"must be >= 0, got {x:g}")
    return x


def percent(value: Any) -> float:
    x = number(value)
    if not 0 <= x <= 100:
        raise Invalid(f"is a percentage (0-100), got {x:g}")
    return x


def fraction(value: Any) -> float:
    """A number in [0, 1)."""
    x = number(value)
    if not 0 <= x < 1:
        raise Invalid(f"must be in [0, 1), got {x:g}")
    return x
