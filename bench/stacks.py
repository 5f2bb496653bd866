"""``python -m bench.stacks FILE [--top N] [--match TEXT]``: read py-spy's raw output.

``python -m bench --profile DIR`` leaves one collapsed-stack file per run (``py-spy record
--format raw``: one ``frame;frame;... count`` line per distinct stack). This prints the
functions by self time (the innermost frame) and by inclusive time (anywhere on the
stack), as shares of all samples, so a profile can be read without a flame-graph viewer.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LOC = re.compile(r"\s*\((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def _name(frame: str, line: bool = False) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``, or ``func (file.py:123)``."""
    m = _LOC.search(frame)
    if not m:
        return frame.strip()
    func = frame[: m.start()].strip()
    where = Path(m.group("file")).name
    if line and m.group("line"):
        where += f":{m.group('line')}"
    return f"{func} ({where})"


def load(
    path: Path, match: str = "", lines: bool = False
) -> tuple[Counter[str], Counter[str], int]:
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if match and match not in stack:
            continue
        n = int(count)
        raw = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        frames = [_name(f) for f in raw]
        if not frames:
            continue
        total += n
        self_c[_name(raw[-1], lines)] += n
        for f in set(frames):
            incl[f] += n
    return self_c, incl, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stacks", description=__doc__)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--match", default="", help="only stacks containing this text")
    ap.add_argument("--lines", action="store_true", help="self time per source line")
    args = ap.parse_args(argv)
    for path in args.files:
        self_c, incl, total = load(path, args.match, args.lines)
        print(f"\n{path} ({total} samples{', matching ' + repr(args.match) if args.match else ''})")
        if not total:
            continue
        print(f"  {'self %':>7}  function")
        for name, n in self_c.most_common(args.top):
            print(f"  {100 * n / total:7.1f}  {name}")
        print(f"  {'incl %':>7}  function")
        for name, n in incl.most_common(args.top):
            print(f"  {100 * n / total:7.1f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
