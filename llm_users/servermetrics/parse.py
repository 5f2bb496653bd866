"""A server's /metrics page -> metric families, with prometheus_client's own text parser.

Bounded: a page over ``max_bytes`` or with more than ``max_series`` samples is refused with a
note, and anything that is not the Prometheus text format (an HTML or JSON page, a 404 body)
comes back as a note, never as an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["MAX_BYTES", "MAX_SERIES", "NOT_PROMETHEUS", "Parsed", "only_families", "parse"]

# A vLLM page is 50-250 KB (per engine and model label set); 8 MiB leaves room for many
# engines and LoRA labels while keeping a misdirected URL (a file download) out of memory.
MAX_BYTES = 8 * 1024 * 1024
MAX_SERIES = 100_000  # samples in one page; a vLLM page holds a few thousand
NOT_PROMETHEUS = "not in the Prometheus text format"
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_gcount", "_gsum")


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _wanted(line: str, keep: frozenset[str]) -> bool:
    """Whether a page line belongs to one of the families in ``keep`` (parser names)."""
    if line.startswith("#"):
        parts = line.split(None, 3)
        return len(parts) > 2 and parts[1] in ("HELP", "TYPE") and _base(parts[2]) in keep
    end = len(line)
    for sep in ("{", " "):
        i = line.find(sep)
        if 0 <= i < end:
            end = i
    name = line[:end]
    return name in keep or _base(name) in keep


def only_families(text: str, keep: frozenset[str]) -> str:
    """The lines of ``text`` that belong to the families named in ``keep`` (parser names).

    prometheus_client's parser takes about 0.5 ms per KB; a vLLM page is mostly histograms
    nobody here reads (token counts, prefill and decode times), so they are dropped first.
    """
    out = [line for line in text.splitlines() if _wanted(line, keep)]
    return "\n".join(out) + "\n" if out else ""


@dataclass
class Parsed:
    """Families by parser name (counters without `_total`), or a note saying why none."""

    families: dict[str, Metric] = field(default_factory=dict)
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.note is None


def _pieces(text: str, lines_per_piece: int, keep: frozenset[str] | None) -> Iterator[str]:
    """The page in pieces of at most ``lines_per_piece`` samples, each piece repeating its
    family's HELP/TYPE lines (a family's lines form one group in the text format), so every
    piece parses on its own and pieces of one family merge by name."""
    header: list[str] = []
    body: list[str] = []
    current = None
    scanned = 0
    for line in text.splitlines():
        scanned += 1
        if scanned % (lines_per_piece * 4) == 0:
            yield ""  # a long run of dropped lines: a pause all the same
        if keep is not None and not _wanted(line, keep):
            continue
        if line.startswith(("# HELP ", "# TYPE ")):
            parts = line.split(None, 3)
            name = parts[2] if len(parts) > 2 else None
            if name != current:
                if body:
                    yield "\n".join(header + body) + "\n"
                header, body, current = [], [], name
            header.append(line)
            continue
        body.append(line)
        if len(body) >= lines_per_piece:
            yield "\n".join(header + body) + "\n"
            body = []
    if body or header:
        yield "\n".join(header + body) + "\n"


def parse(
    text: str | bytes,
    max_bytes: int = MAX_BYTES,
    max_series: int = MAX_SERIES,
    keep: frozenset[str] | None = None,
    pause: Callable[[], object] | None = None,
    lines_per_piece: int = 100,
) -> Parsed:
    """Parse one scrape; bad, empty or oversized input gives a ``Parsed`` with a note.

    Every family is kept (unknown ones raw) unless ``keep`` names the only ones wanted.
    With ``pause``, the page is parsed in pieces of ``lines_per_piece`` lines (about 1 ms
    each) and ``pause`` is called between them (a short ``gevent.sleep``: the loop runs).
    """
    if len(text) > max_bytes:
        return Parsed(note=f"page larger than {max_bytes} bytes, not read")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return Parsed(note=f"{NOT_PROMETHEUS} (not UTF-8)")
    head = text.lstrip()[:1]
    if head in ("<", "{", "["):  # HTML, JSON: skip the parser, say what it is
        kind = "an HTML page" if head == "<" else "JSON"
        return Parsed(note=f"{NOT_PROMETHEUS} ({kind})")
    if keep is not None and pause is None:
        text = only_families(text, keep)
    families: dict[str, Metric] = {}
    series = 0
    try:
        pieces = _pieces(text, lines_per_piece, keep) if pause is not None else (text,)
        for piece in pieces:
            for fam in text_string_to_metric_families(piece):
                series += len(fam.samples)
                if series > max_series:
                    return Parsed(note=f"more than {max_series} series, not read")
                seen = families.get(fam.name)
                if seen is not None and seen.type == fam.type:
                    seen.samples.extend(fam.samples)  # the next piece of the same family
                else:
                    families[fam.name] = fam
            if pause is not None:
                pause()
    except Exception as exc:  # the parser raises ValueError, IndexError, KeyError...
        line = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        return Parsed(note=f"{NOT_PROMETHEUS} ({line})")
    if not families:
        what = (
            "none of the known families" if keep is not None else f"{NOT_PROMETHEUS} (no metrics)"
        )
        return Parsed(note=what)
    return Parsed(families)
