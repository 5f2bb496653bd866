"""A server's /metrics page -> metric families, with prometheus_client's own text parser.

Bounded: a page over ``max_bytes`` or with more than ``max_series`` samples is refused with a
note, and anything that is not the Prometheus text format (an HTML or JSON page, a 404 body)
comes back as a note, never as an exception.
"""

from __future__ import annotations

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


def only_families(text: str, keep: frozenset[str]) -> str:
    """The lines of ``text`` that belong to the families named in ``keep`` (parser names).

    prometheus_client's parser takes about 0.5 ms per KB; a vLLM page is mostly histograms
    nobody here reads (token counts, prefill and decode times), so they are dropped first.
    """
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) > 2 and parts[1] in ("HELP", "TYPE") and _base(parts[2]) in keep:
                out.append(line)
            continue
        end = len(line)
        for sep in ("{", " "):
            i = line.find(sep)
            if 0 <= i < end:
                end = i
        name = line[:end]
        if name in keep or _base(name) in keep:
            out.append(line)
    return "\n".join(out) + "\n" if out else ""


@dataclass
class Parsed:
    """Families by parser name (counters without `_total`), or a note saying why none."""

    families: dict[str, Metric] = field(default_factory=dict)
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.note is None


def parse(
    text: str | bytes,
    max_bytes: int = MAX_BYTES,
    max_series: int = MAX_SERIES,
    keep: frozenset[str] | None = None,
) -> Parsed:
    """Parse one scrape; bad, empty or oversized input gives a ``Parsed`` with a note.

    Every family is kept (unknown ones raw) unless ``keep`` names the only ones wanted.
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
    if keep is not None:
        text = only_families(text, keep)
        if not text:
            return Parsed(note="none of the known families")
    families: dict[str, Metric] = {}
    series = 0
    try:
        for fam in text_string_to_metric_families(text):
            series += len(fam.samples)
            if series > max_series:
                return Parsed(note=f"more than {max_series} series, not read")
            families[fam.name] = fam
    except Exception as exc:  # the parser raises ValueError, IndexError, KeyError...
        line = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        return Parsed(note=f"{NOT_PROMETHEUS} ({line})")
    if not families:
        return Parsed(note=f"{NOT_PROMETHEUS} (no metrics)")
    return Parsed(families)
