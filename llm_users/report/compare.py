"""Compare runs' summary JSON files: differing settings first, the headline figures, then the
rest side by side, and regression rules.

``llm-users compare BASE.json NEW.json [MORE.json ...] [--fail-on RULES] [--all] [--format
text|json]`` exits 0, 3 when a ``--fail-on`` rule is broken, 2 on bad input (one line naming it).
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
from ..measure.figures import fmt_change_pct, fmt_sig
from .safe_text import for_terminal

__all__ = ["Rule", "compare", "figures", "main", "parse_rules", "settings_mismatch"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_REGRESSION = 0, 2, 3
# Settings, not figures: runs that differ here measure different things (host is left out:
# comparing two servers is the point of a comparison).
SETTINGS: tuple[str, ...] = ("mode", "endpoint", "model", "max_tokens", "concurrency")
SETTINGS += ("request_rate", "arrivals", "workload", "dataset", "prompt_type", "slo")
_NOT_FIGURES = frozenset(
    (*SETTINGS, "host", "seed", "failure_examples", "notes", "workers")
    + ("started_at", "versions", "options")  # what the run was, not what it measured
)
# Options recorded in the JSON that do not change what is measured (or are secret).
_NOT_SETTINGS = frozenset(("summary_json", "records", "html_report", "print_requests", "api_key"))
# The figures a reader looks at first, in this order (those a run has).
HEADLINE = (
    "ttft_ms.p50", "ttft_ms.p99", "tpot_ms.p50", "tpot_ms.p99", "itl_ms.p99", "e2e_ms.p50",
    "e2e_ms.p99", "latency_ms.p50", "latency_ms.p99", "output_tokens_per_s", "requests_per_s",
    "failures", "goodput.percent",
)  # fmt: skip
# Bookkeeping rather than results: shown with --all only.
_NOISE = re.compile(r"(_unix$|^timestamps\.|^workers\.|\.count$|^warmup\.warmup_)")
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


def _differ(key: str, values: list[Any]) -> str | None:
    if all(v == values[0] for v in values[1:]):
        return None
    return f"the runs differ in {key}: " + " vs ".join(repr(v) for v in values)


def settings_mismatch(base: dict[str, Any], *others: dict[str, Any]) -> list[str]:
    """One warning per setting that differs between the runs: the summary's own keys, then
    every option the runs recorded (``options``), in the order they are declared."""
    runs = [base, *others]
    out = []
    for key in SETTINGS:
        if any(key in r for r in runs):
            line = _differ(key, [r.get(key) for r in runs])
            if line:
                out.append(line)
    recorded = [r.get("options") for r in runs]
    if all(isinstance(o, dict) for o in recorded):
        keys = list(dict.fromkeys(k for o in recorded for k in o))  # type: ignore[union-attr]
        for key in keys:
            if key in _NOT_SETTINGS or any(key in r for r in runs):
                continue  # not a setting, or a top-level key already compared (model)
            line = _differ(key, [o.get(key) for o in recorded])  # type: ignore[union-attr]
            if line:
                out.append(line)
    elif any(isinstance(o, dict) for o in recorded):
        out.append("some runs record no options (an older llm-users): their settings are unknown")
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


def ordered(names: list[str], show_all: bool) -> list[str]:
    """Headline figures first (in their order), then the rest; noise only with ``show_all``."""
    head = [n for n in HEADLINE if n in names]
    rest = [n for n in names if n not in head and (show_all or not _NOISE.search(n))]
    return head + rest


def _pct(a: float | None, b: float | None) -> float | None:
    return (b - a) / abs(a) * 100.0 if a is not None and b is not None and a else None


def _text(
    tables: list[list[dict[str, Any]]],
    names: list[str],
    warnings: list[str],
    broken: list[str],
    paths: list[str],
    hidden: int = 0,
) -> str:
    """Warnings first, then one line per figure: the runs' values and the change from the first
    (two runs: the absolute change too)."""
    lines = [f"warning: {w}" for w in warnings]
    if len(paths) > 2:
        lines += [f"run {i}: {p}" for i, p in enumerate(paths, 1)]
    width = max([len("figure")] + [len(n) for n in names])
    by_name = [{r["figure"]: r for r in rows} for rows in tables]
    if len(tables) == 1:
        head = f"{'figure':<{width}}  {'base':>12}  {'new':>12}  {'change':>12}  {'change %':>9}"
    else:
        runs = "".join(f"  {'run ' + str(i):>12}" for i in range(1, len(tables) + 2))
        head = f"{'figure':<{width}}{runs}" + "".join(
            f"  {f'% {i} vs 1':>9}" for i in range(2, len(tables) + 2)
        )
    lines.append(head)
    for n in names:
        rows = [b.get(n, {}) for b in by_name]
        base = rows[0].get("base")
        if len(tables) == 1:
            r = rows[0]
            change = "-" if r["change"] is None else f"{r['change']:+.6g}"
            lines.append(
                f"{n:<{width}}  {fmt_sig(r['base']):>12}  {fmt_sig(r['new']):>12}  "
                f"{change:>12}  {fmt_change_pct(r['change_pct']):>9}"
            )
        else:
            values = [base, *(r.get("new") for r in rows)]
            cells = "".join(f"  {fmt_sig(v):>12}" for v in values)
            cells += "".join(f"  {fmt_change_pct(_pct(base, v)):>9}" for v in values[1:])
            lines.append(f"{n:<{width}}{cells}")
    lines += [f"REGRESSION: {b}" for b in broken]
    if hidden:
        lines.append(f"({hidden} bookkeeping figures not shown: --all shows them)")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, as every bad input here
        raise ConfigError(f"compare: {message}")


def main(argv: list[str] | None = None) -> int:
    """Print the comparison; 0, 3 when a rule is broken, 2 on bad input."""
    ap = _Parser(prog="llm-users compare", description=__doc__.splitlines()[0])
    ap.add_argument("base", help="summary JSON of the reference run")
    ap.add_argument("new", nargs="+", help="summary JSON of the run(s) to compare with it")
    ap.add_argument(
        "--fail-on", default="", help="e.g. 'ttft_ms.p99>+10%%,output_tokens_per_s<-5%%'"
    )
    ap.add_argument("--all", action="store_true", help="also bookkeeping figures (clocks, counts)")
    ap.add_argument("--format", choices=("text", "json"), default="text")
    try:
        args = ap.parse_args(argv)
        base = load(args.base)
        news = [load(path) for path in args.new]
        tables = [compare(base, new) for new in news]
        known: set[str] = set()
        for rows in tables:
            known |= {r["figure"] for r in rows if r["base"] is not None and r["new"] is not None}
        rules = parse_rules(args.fail_on, known) if args.fail_on.strip() else []
    except ConfigError as exc:
        print(f"error: {for_terminal(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    warnings = settings_mismatch(base, *news)
    broken = []
    for i, rows in enumerate(tables, 2):
        values = {r["figure"]: r for r in rows}
        for rule in rules:
            r = values.get(rule.figure)
            if r is None or r["base"] is None or r["new"] is None:
                continue
            if rule.broken(r["base"], r["new"]):
                change = rule.change(r["base"], r["new"])
                which = f"run {i}: " if len(tables) > 1 else ""
                broken.append(
                    f"{which}{rule.text}: {fmt_sig(r['base'])} -> {fmt_sig(r['new'])} "
                    f"({change:+.4g}{rule.unit or ''})"
                )
    every = list(dict.fromkeys(r["figure"] for rows in tables for r in rows))
    names = ordered(every, args.all)
    if args.format == "json":
        out: dict[str, Any] = {"warnings": warnings, "broken": broken, "rules": args.fail_on}
        keep = set(names)
        out["figures"] = [r for r in tables[0] if r["figure"] in keep]
        if len(tables) > 1:
            out["runs"] = [[r for r in rows if r["figure"] in keep] for rows in tables]
        print(json.dumps(out, indent=2))
    else:
        paths = [args.base, *args.new]
        print(for_terminal(_text(tables, names, warnings, broken, paths, len(every) - len(names))))
    return EXIT_REGRESSION if broken else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
