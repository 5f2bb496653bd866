"""The registry of reported figures: each one's label, unit, digits, kind and mode, declared once.

The console table, the web UI's tab and /llm page, the HTML report, the CSV and the --slo
option read it; adding a figure to every output is one :class:`Figure` entry in :data:`FIGURES`.
It also owns how a number is written for people: one function per style, one "missing" mark
(the seed's lines, reproduced word for word, keep their own).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .per_request import RequestResult

__all__ = [
    "FIGURES",
    "MISSING",
    "SEED_MISSING",
    "SLO_KEYS",
    "Figure",
    "by_key",
    "fmt",
    "fmt_change_pct",
    "fmt_grouped",
    "fmt_seed",
    "fmt_sig",
    "lookup",
    "of_kind",
    "registry_json",
    "request_value",
    "slo_met",
]

Kind = Literal["scalar", "distribution", "seed"]
Mode = Literal["streaming", "non-streaming", "both"]


@dataclass(frozen=True)
class Figure:
    """One reported figure. ``key`` is its summary JSON key (and, for a distribution, the
    aggregate's histogram and the per-request result field of the same name); a dotted key
    (``warmup.requests``) is a field of a nested object (see :func:`lookup`)."""

    key: str
    label: str  # short, for the web tab, the /llm page and charts
    unit: str = ""  # "ms", "s", "tokens/s", ...; "" for counts and text
    digits: int | None = 2  # decimals shown to people; None: an integer or text
    kind: Kind = "scalar"
    mode: Mode = "both"  # the runs that have it
    slo: bool = False  # may be an --slo key: checked per request, counted in goodput
    long: str = ""  # a longer label for the console table and the HTML report
    tab: bool = True  # shown in the web UI's LLM tab (the /llm page shows every figure)
    open_loop: bool = False  # recorded only in open-loop runs: reported only when it has samples
    cache: bool = False  # prefix cache: reported only in shared-prefix/trace runs or when seen
    histogram: str = ""  # the HTML report draws its histogram under this title
    samples: str = "requests"  # what one sample of a distribution is
    about: str = ""  # one sentence: what is measured (chart captions)
    endpoint: str = ""  # reported only in runs of this endpoint ("": every endpoint)
    per_s: str = ""  # a rate over the run: this sum of the aggregate / the run's duration

    @property
    def title(self) -> str:
        """The console table's and the HTML report's label."""
        return self.long or self.label

    @property
    def with_unit(self) -> str:
        """The short label with its unit in brackets (the web tab's and the page's)."""
        return self._unit_after(self.label)

    @property
    def title_with_unit(self) -> str:
        """The long label with its unit in brackets (the HTML report's)."""
        return self._unit_after(self.title)

    def _unit_after(self, label: str) -> str:
        if not self.unit or label.lower().endswith(self.unit.lower()):
            return label
        return f"{label} ({self.unit})"

    @property
    def sparse(self) -> bool:
        """Reported only when it has samples (open loop, prefix cache)."""
        return self.open_loop or self.cache

    def shows_in(self, mode: str) -> bool:
        return self.mode == "both" or self.mode == mode

    def fmt(self, x: Any) -> str:
        """The value for people at this figure's digits, the web tab's way (:func:`fmt`)."""
        return fmt(x, self.digits)

    def fmt_grouped(self, x: Any) -> str:
        """The value at this figure's digits with thousands separators (:func:`fmt_grouped`)."""
        return fmt_grouped(x, self.digits)


# -- numbers for people: one function per style --------------------------------------------------

MISSING = "-"  # a value that is missing (None, NaN, infinite), in every table and line
# The seed's own lines are reproduced word for word, and say "n/a" where the seed had no value.
SEED_MISSING = "n/a"


def _fixed(x: Any, digits: int | None, sep: str) -> str:
    if x is None or x == "":
        return MISSING
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):  # counts are whole, whatever the figure's digits
        return f"{x:{sep}}"
    if isinstance(x, float):
        return f"{x:{sep}.{digits or 0}f}" if math.isfinite(x) else MISSING
    return str(x)


def fmt(x: Any, digits: int | None = 2) -> str:
    """Fixed decimals, no thousands separators: the web tab's, the /llm page's (its
    JavaScript twin is ``fmt`` in llm.html). ``1/3`` at 3 digits is ``0.333``."""
    return _fixed(x, digits, "")


def fmt_grouped(x: Any, digits: int | None = 2) -> str:
    """Fixed decimals with thousands separators: the console table's and the HTML report's.
    ``12345.678`` at 1 digit is ``12,345.7``."""
    return _fixed(x, digits, ",")


def fmt_sig(x: float | None, signed: bool = False) -> str:
    """Six significant digits, for figures of any size side by side (``compare``);
    ``signed``: with its sign, for a change. ``1234567.0`` is ``1.23457e+06``."""
    if x is None or not math.isfinite(x):
        return MISSING
    return f"{x:+.6g}" if signed else f"{x:.6g}"


def fmt_change_pct(x: float | None) -> str:
    """A relative change in percent, signed, one decimal: ``7.5`` is ``+7.5%``."""
    if x is None or not math.isfinite(x):
        return MISSING
    return f"{x:+.1f}%"


def fmt_seed(x: float | None) -> str:
    """The seed script's way: Python's ``str`` of the float, all its digits; "n/a" if None."""
    return SEED_MISSING if x is None else str(float(x))


def _dist(key: str, label: str, mode: Mode, **kw: Any) -> Figure:
    return Figure(key, label, unit="ms", kind="distribution", mode=mode, **{"tab": False, **kw})


def _seed(key: str, label: str, unit: str, mode: Mode) -> Figure:
    return Figure(key, label, unit=unit, kind="seed", mode=mode)


# In reading order: tables list their figures in this order.
FIGURES: tuple[Figure, ...] = (
    # -- run facts and totals ---------------------------------------------------------------
    Figure("mode", "Mode", digits=None),
    Figure("model", "Model", digits=None),
    Figure("concurrency", "Users", digits=None, long="Users (concurrency)"),
    Figure("requests", "Requests (ok)", digits=None, long="Requests ok"),
    Figure("failures", "Failures", digits=None, long="Requests failed"),
    Figure("output_tokens", "Output tokens", unit="tokens", digits=None, tab=False),
    Figure("output_tokens_per_s", "Output tokens/s", unit="tokens/s", digits=1),
    Figure("requests_per_s", "Requests/s", unit="requests/s", digits=3),
    Figure("duration_s", "Duration", unit="s", digits=1),
    # -- embeddings and rerank (no tokens generated: what went in, per second) ---------------
    Figure("inputs_per_s", "Inputs/s", unit="inputs/s", digits=1, tab=False,
           endpoint="embeddings", per_s="items", about="Texts embedded per second."),
    Figure("input_tokens_per_s", "Input tokens/s", unit="tokens/s", digits=1, tab=False,
           endpoint="embeddings", per_s="prompt_tokens",
           about="Prompt tokens embedded per second (usage.prompt_tokens)."),
    Figure("documents_per_s", "Documents/s", unit="documents/s", digits=1, tab=False,
           endpoint="rerank", per_s="items", about="Documents scored per second."),
    # -- workloads (present only in runs that have them) ----------------------------------
    Figure("warmup.requests", "Warm-up requests (excluded)", digits=None,
           long="Warm-up requests (kept out of every figure)"),
    Figure("conversations.completed", "Conversations completed", digits=None),
    Figure("conversations.truncated_requests", "Requests with history truncated", digits=None,
           tab=False, long="Requests sent with their oldest turns left out"),
    # -- distributions (ms) -------------------------------------------------------------------
    _dist("ttft_ms", "TTFT", "streaming", slo=True, tab=True, histogram="TTFT",
          about="Time to first token of each successful request."),
    _dist("ttfc_ms", "Time to first content", "streaming", slo=True),
    _dist("itl_ms", "ITL", "streaming", slo=True, tab=True, long="ITL (per event)",
          histogram="ITL (gap between token events)", samples="events",
          about="Gap between successive token-carrying events (one per event)."),
    _dist("tpot_ms", "TPOT", "streaming", slo=True, tab=True),
    _dist("e2e_ms", "E2E", "streaming", slo=True, tab=True, histogram="E2E",
          about="Request start to stream end."),
    _dist("latency_ms", "Latency", "non-streaming", tab=True, histogram="Latency (E2E)",
          about="Request start to body read."),
    _dist("queue_delay_ms", "Queue delay", "both", long="Queue delay (open loop)",
          open_loop=True),
    _dist("ttft_from_intended_ms", "TTFT from intended start", "streaming", open_loop=True),
    _dist("e2e_from_intended_ms", "E2E from intended start", "both", open_loop=True),
    # -- prefix cache (servers that report usage.prompt_tokens_details.cached_tokens) -------
    Figure("prefix_cache_hit_rate", "Prefix cache hit rate", unit="%", digits=1, cache=True,
           long="Prefix cache hit rate (cached / prompt tokens)",
           about="Prompt tokens the server found in its prefix cache, of all prompt tokens."),
    _dist("ttft_cached_ms", "TTFT, mostly cached", "streaming", cache=True, tab=True,
          long="TTFT (>= 50 % cached)",
          about="TTFT of requests with at least half of their prompt in the prefix cache."),
    _dist("ttft_uncached_ms", "TTFT, mostly uncached", "streaming", cache=True, tab=True,
          long="TTFT (< 50 % cached)",
          about="TTFT of requests with less than half of their prompt in the prefix cache."),
    # -- the seed script's figures ------------------------------------------------------------
    _seed("average_first_token_latency_ms", "Average first token latency", "ms", "streaming"),
    _seed("average_follow_latency_ms", "Average follow latency", "ms", "streaming"),
    _seed("average_follow_tokens", "Average follow tokens", "tokens", "streaming"),
    _seed("follow_throughput_tokens_per_s", "Follow throughput", "tokens/s", "streaming"),
    _seed("average_latency_ms", "Average latency", "ms", "non-streaming"),
    _seed("average_tokens", "Average tokens", "tokens", "non-streaming"),
    _seed("throughput_tokens_per_s", "Throughput", "tokens/s", "non-streaming"),
)  # fmt: skip

SLO_KEYS: tuple[str, ...] = tuple(f.key for f in FIGURES if f.slo)
_BY_KEY = {f.key: f for f in FIGURES}


def lookup(summary: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """A figure's value in a summary: ``a.b`` is ``summary["a"]["b"]``; ``default`` if absent."""
    v: Any = summary
    for part in key.split("."):
        if not isinstance(v, Mapping) or part not in v:
            return default
        v = v[part]
    return v


def by_key(key: str) -> Figure:
    return _BY_KEY[key]


def of_kind(
    kind: Kind, mode: str | None = None, keys: Mapping[str, Any] | None = None
) -> Iterator[Figure]:
    """The figures of a kind, in order; only a run mode's (if given), only those in ``keys``."""
    for f in FIGURES:
        if (
            f.kind == kind
            and (mode is None or f.shows_in(mode))
            and (keys is None or f.key in keys)
        ):
            yield f


def registry_json() -> list[dict[str, Any]]:
    """The registry as plain JSON (served to the /llm page), with each figure's labels."""
    return [
        {
            **asdict(f),
            "title": f.title,
            "with_unit": f.with_unit,
            "title_with_unit": f.title_with_unit,
        }
        for f in FIGURES
    ]


def request_value(res: RequestResult, key: str) -> float | None:
    """One request's value of an SLO figure: ITL is the request's largest gap (every gap
    must meet the limit); None when the request has no such figure."""
    v = getattr(res, key)
    if isinstance(v, list):
        return max(v) if v else None
    return v


def slo_met(res: RequestResult, limits: Mapping[str, float]) -> bool:
    """Whether a request met every SLO: succeeded, and each figure exists and is <= its limit."""
    return res.ok and all(
        (v := request_value(res, k)) is not None and v <= limit for k, limit in limits.items()
    )
