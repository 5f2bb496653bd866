"""Compare two runs' summary JSON files: every figure side by side, and regression rules.

``python -m llm_users.report.compare BASE.json NEW.json [--fail-on RULES] [--format text|json]``
exits 0, 3 when a ``--fail-on`` rule is broken, 2 on bad input (one line naming it).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

from ..errors import ConfigError
from .safe_text import for_terminal

__all__ = ["Rule", "compare", "figures", "main", "parse_rules", "settings_mismatch"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_REGRESSION = 0, 2, 3
# Settings, not figures: runs that differ here measure different things (host is left out:
# comparing two servers is the point of a comparison).
SETTINGS: tuple[str, ...] = ("mode", "endpoint", "model", "max_tokens", "concurrency")
SETTINGS += ("request_rate", "arrivals", "workload", "dataset", "prompt_type", "slo")
_NOT_FIGURES = frozenset((*SETTINGS, "host", "seed", "failure_examples", "notes", "workers"))
_DIST_KEYS = ("mean", "p50", "p90", "p95", "p99", "max")
_RULE = re.compile(r"^\s*([A-Za-z0-9_.:]+)\s*([<>])\s*([+-]?\d+(?:\.\d+)?)\s*(%|ms|s)?\s*$")


def _bad(message: str) -> NoReturn:
    raise ConfigError(message)


# A summary is about 100 KB and 5 levels deep; past these a file is not one (and a deeper one
# would raise RecursionError in the walk below, or in the decoder itself).
MAX_SUMMARY_BYTES = 64 << 20
MAX_DEPTH = 32


def load(path: str) -> dict[str, Any]:
    """A summary JSON file, or a ConfigError naming the file and the problem."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SUMMARY_BYTES + 1)
        if len(raw) > MAX_SUMMARY_BYTES:
            _bad(f"{path} is not a summary: larger than {MAX_SUMMARY_BYTES >> 20} MiB")
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        _bad(f"no such file: {path}")
    except (OSError, UnicodeDecodeError) as exc:
        _bad(f"cannot read {path}: {exc}")
    except json.JSONDecodeError as exc:
        _bad(f"{path} is not JSON: {exc.msg} at line {exc.lineno}")
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, deep nesting
        _bad(f"{path} is not a summary ({type(exc).__name__})")
    if not isinstance(data, dict):
        _bad(f"{path} is not a summary (a JSON object written by --summary-json)")
    if _depth(data) > MAX_DEPTH:
        _bad(f"{path} is not a summary: nested more than {MAX_DEPTH} levels deep")
    return data


def _depth(value: Any) -> int:
    """How deeply lists and objects nest (without recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d <= MAX_DEPTH:
                todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def figures(summary: dict[str, Any]) -> dict[str, float]:
    """Every numeric figure, flattened: ``ttft_ms.p99``, ``failures_by_kind.http_500``...

    Distributions give their mean/p50/p90/p95/p99/max; settings and lists are left out.
    """
    out: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float):
            if math.isfinite(value):
                out[prefix] = float(value)
        elif isinstance(value, dict):
            keys = _DIST_KEYS if "p50" in value else sorted(value)
            for k in keys:
                if k in value and isinstance(k, str):
                    walk(f"{prefix}.{k}" if prefix else k, value[k])

    for key in sorted(summary):
        if key not in _NOT_FIGURES:
            walk(key, summary[key])
    return out


def _unit(name: str) -> str:
    last = name.split(".")
    if any(part.endswith("_ms") for part in last):
        return "ms"
    if any(part.endswith("_s") and not part.endswith("_per_s") for part in last):
        return "s"
    return ""


@dataclass(frozen=True)
class Rule:
    """``figure > +10%`` (relative) or ``figure > +20ms`` (absolute, in the rule's unit)."""

    text: str
    figure: str
    op: str  # ">" | "<"
    amount: float
    unit: str  # "%", "ms", "s" or ""

    def change(self, base: float, new: float) -> float:
        """The change this rule looks at, in its unit."""
        if self.unit == "%":
            if base == 0:
                return 0.0 if new == 0 else math.copysign(math.inf, new)
            return (new - base) / abs(base) * 100.0
        diff = new - base
        fig = _unit(self.figure)
        if self.unit and fig != self.unit:
            diff = diff * 1000.0 if (fig, self.unit) == ("s", "ms") else diff / 1000.0
        return diff

    def broken(self, base: float, new: float) -> bool:
        c = self.change(base, new)
        return c > self.amount if self.op == ">" else c < self.amount


def parse_rules(text: str, known: set[str]) -> list[Rule]:
    """``'ttft_ms.p99>+10%,output_tokens_per_s<-5%'`` -> rules; ConfigError on a bad one."""
    rules = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = _RULE.match(part)
        if not m:
            _bad(
                f"--fail-on: cannot read {part!r} (expected FIGURE>+N% or FIGURE<-N%, "
                "or an absolute change like ttft_ms.p50>+20ms)"
            )
        figure, op, amount, unit = m.group(1), m.group(2), float(m.group(3)), m.group(4) or ""
        if figure not in known:
            _bad(f"--fail-on: unknown figure {figure!r} in {part!r} (see the table for names)")
        if unit in ("ms", "s") and not _unit(figure):
            _bad(f"--fail-on: {figure!r} is not a time, {unit!r} does not apply in {part!r}")
        rules.append(Rule(part, figure, op, amount, unit))
    if not rules:
        _bad(f"--fail-on: no rule in {text!r}")
    return rules


def settings_mismatch(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One warning per setting that differs between the runs."""
    out = []
    for key in SETTINGS:
        if key in base or key in new:
            a, b = base.get(key), new.get(key)
            if a != b:
                out.append(f"the runs differ in {key}: {a!r} vs {b!r}")
    return out


def compare(base: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure present in either run: base, new, absolute and relative change."""
    fb, fn = figures(base), figures(new)
    rows = []
    for name in sorted(set(fb) | set(fn)):
        a, b = fb.get(name), fn.get(name)
        row: dict[str, Any] = {
            "figure": name,
            "base": a,
            "new": b,
            "change": None,
            "change_pct": None,
        }
        if a is not None and b is not None:
            row["change"] = b - a
            row["change_pct"] = (b - a) / abs(a) * 100.0 if a else None
        rows.append(row)
    return rows


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    if pct:
        return f"{x:+.1f}%"
    return f"{x:.6g}"


def _text(rows: list[dict[str, Any]], warnings: list[str], broken: list[str]) -> str:
    width = max([len("figure")] + [len(r["figure"]) for r in rows])
    lines = [f"{'figure':<{width}}  {'base':>12}  {'new':>12}  {'change':>12}  {'change %':>9}"]
    for r in rows:
        change = "-" if r["change"] is None else f"{r['change']:+.6g}"
        lines.append(
            f"{r['figure']:<{width}}  {_fmt(r['base']):>12}  {_fmt(r['new']):>12}  "
            f"{change:>12}  {_fmt(r['change_pct'], pct=True):>9}"
        )
    lines += [f"warning: {w}" for w in warnings]
    lines += [f"REGRESSION: {b}" for b in broken]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, as every bad input here
        raise ConfigError(f"compare: {message}")


def main(argv: list[str] | None = None) -> int:
    """Print the comparison; 0, 3 when a rule is broken, 2 on bad input."""
    ap = _Parser(prog="python -m llm_users.report.compare", description=__doc__.splitlines()[0])
    ap.add_argument("base", help="summary JSON of the reference run")
    ap.add_argument("new", help="summary JSON of the run to check")
    ap.add_argument(
        "--fail-on", default="", help="e.g. 'ttft_ms.p99>+10%%,output_tokens_per_s<-5%%'"
    )
    ap.add_argument("--format", choices=("text", "json"), default="text")
    try:
        args = ap.parse_args(argv)
        base, new = load(args.base), load(args.new)
        rows = compare(base, new)
        values = {r["figure"]: r for r in rows}
        known = {n for n, r in values.items() if r["base"] is not None and r["new"] is not None}
        rules = parse_rules(args.fail_on, known) if args.fail_on.strip() else []
    except ConfigError as exc:
        print(f"error: {for_terminal(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    warnings = settings_mismatch(base, new)
    broken = []
    for rule in rules:
        r = values[rule.figure]
        if rule.broken(r["base"], r["new"]):
            change = rule.change(r["base"], r["new"])
            unit = rule.unit or ""
            broken.append(
                f"{rule.text}: {_fmt(r['base'])} -> {_fmt(r['new'])} ({change:+.4g}{unit})"
            )
    if args.format == "json":
        out = {"figures": rows, "warnings": warnings, "broken": broken, "rules": args.fail_on}
        print(json.dumps(out, indent=2))
    else:
        print(for_terminal(_text(rows, warnings, broken)))
    return EXIT_REGRESSION if broken else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
