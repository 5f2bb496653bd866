"""A fixed-resolution, mergeable latency histogram (log-linear buckets, sparse counts).

Values are recorded in milliseconds and bucketed in whole microseconds: exact to 1 us
below 2.048 ms, and above that each bucket is at most 1/1024 of its value wide, so a
reported percentile is within 0.05 % of a recorded sample (0.1 ms at 200 ms). Counts live
in a dict keyed by bucket index: recording is O(1), memory is bounded by the number of
distinct buckets (at most 32,768) whatever the number of samples, and two histograms
merge exactly by adding counts -- across users, workers and reports.

Percentiles use the nearest-rank definition: the p-th percentile is the smallest recorded
value such that at least p % of the samples are less than or equal to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing.Self is 3.11+; annotations are strings here (3.10 support)
    from typing_extensions import Self

__all__ = ["CoarseHistogram", "Histogram", "PERCENTILES"]

PERCENTILES = (50, 90, 95, 99)
_LINEAR = 2048  # buckets below this many microseconds are 1 us wide
_HALF = 1024  # sub-buckets per power of two above that
_SHIFT = 11  # bit_length of _HALF: (us >> e) lands in [_HALF, 2 * _HALF)
_MAX_US = (1 << 40) - 1  # about 12.7 days: anything longer is clamped


def _index(us: int) -> int:
    if us < _LINEAR:
        return us
    e = us.bit_length() - _SHIFT
    return _LINEAR + (e - 1) * _HALF + ((us >> e) - _HALF)


def _bounds(index: int, linear: int = _LINEAR, half: int = _HALF) -> tuple[int, int]:
    """[low, high) of a bucket, in microseconds."""
    if index < linear:
        return index, index + 1
    e = (index - linear) // half + 1
    m = (index - linear) % half + half
    return m << e, (m + 1) << e


# The coarse variant (6 % wide buckets, a few dozen per run) serves time series, where a
# histogram is kept per second of the run.
_C_LINEAR, _C_HALF, _C_SHIFT = 32, 16, 5  # _SHIFT = bit_length(_HALF)


def _coarse_index(us: int) -> int:
    if us < _C_LINEAR:
        return us
    e = us.bit_length() - _C_SHIFT
    return _C_LINEAR + (e - 1) * _C_HALF + ((us >> e) - _C_HALF)


class Histogram:
    """Counts of latency samples in ms; exact count, sum, min and max alongside."""

    __slots__ = ("counts", "count", "total", "min", "max")
    _index = staticmethod(_index)
    _linear, _half = _LINEAR, _HALF

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def record(self, value_ms: float) -> None:
        if not -math.inf < value_ms < math.inf:  # NaN and infinities carry no information
            return
        if value_ms < 0:
            value_ms = 0.0
        us = int(value_ms * 1000.0 + 0.5)
        i = self._index(us if us <= _MAX_US else _MAX_US)
        counts = self.counts
        counts[i] = counts.get(i, 0) + 1
        self.count += 1
        self.total += value_ms
        if value_ms < self.min:
            self.min = value_ms
        if value_ms > self.max:
            self.max = value_ms

    def record_many(self, values_ms: Iterable[float]) -> None:
        """:meth:`record` of each value, in order (the same sum to the last bit), inlined:
        a request's inter-token latencies come here, one per token."""
        counts = self.counts
        get = counts.get
        index = self._index
        inf = math.inf
        n, total, lo, hi = self.count, self.total, self.min, self.max
        if isinstance(values_ms, list) and (zeros := values_ms.count(0.0)):
            # Tokens read together are 0 ms apart (a burst read: most of them). Counted in
            # one C-level step; adding 0.0 leaves the sum as it was, to the last bit.
            i = index(0)
            counts[i] = get(i, 0) + zeros
            n += zeros
            if lo > 0.0:
                lo = 0.0
            if hi < 0.0:
                hi = 0.0
            values_ms = [v for v in values_ms if v != 0.0] if zeros < len(values_ms) else []
        for v in values_ms:
            if not -inf < v < inf:
                continue
            if v < 0:
                v = 0.0
            us = int(v * 1000.0 + 0.5)
            i = index(us if us <= _MAX_US else _MAX_US)
            counts[i] = get(i, 0) + 1
            n += 1
            total += v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        self.count, self.total, self.min, self.max = n, total, lo, hi

    def merge(self, other: Histogram) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        counts = self.counts
        for i, c in other.counts.items():
            counts[i] = counts.get(i, 0) + c
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile in ms (bucket midpoint, clamped to the exact min/max)."""
        if not self.count:
            return None
        # Exact rank: in floats, 99.9 / 100 * 1000 is 999.0000000000001 (rank 1000, not 999).
        rank = max(1, math.ceil(Fraction(str(p)) * self.count / 100))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                low, high = _bounds(i, self._linear, self._half)
                mid_ms = (low + high - 1) / 2000.0 if high - low > 1 else low / 1000.0
                return min(max(mid_ms, self.min), self.max)
        return self.max

    def copy(self) -> Self:
        h = type(self)()
        h.counts = dict(self.counts)
        h.count, h.total, h.min, h.max = self.count, self.total, self.min, self.max
        return h

    def since(self, older: Histogram) -> Self:
        """The samples recorded after ``older``, an earlier :meth:`copy` of this histogram.

        Its min and max are this histogram's (the window's own are not known), so its
        percentiles are exact to the bucket like any other, clamped to the run's extremes.
        """
        h = type(self)()
        old = older.counts
        h.counts = {i: c - old.get(i, 0) for i, c in self.counts.items() if c > old.get(i, 0)}
        h.count, h.total = self.count - older.count, self.total - older.total
        if h.count:
            h.min, h.max = self.min, self.max
        return h

    def buckets(self) -> Iterator[tuple[float, float, int]]:
        """The recorded buckets in ascending order: (low_ms, high_ms, count), each bucket
        holding the values in [low_ms, high_ms) (at the 1 us recording resolution)."""
        for i in sorted(self.counts):
            low, high = _bounds(i, self._linear, self._half)
            yield low / 1000.0, high / 1000.0, self.counts[i]

    def rank_below(self, value_ms: float) -> int:
        """How many samples fell in buckets below the one holding ``value_ms``."""
        us = int(value_ms * 1000.0 + 0.5)
        limit = self._index(us if us <= _MAX_US else _MAX_US)
        return sum(c for i, c in self.counts.items() if i < limit)

    def ranks_below(self, values_ms: Iterable[float]) -> list[int]:
        """:meth:`rank_below` of each of ascending ``values_ms``, in one pass over the counts."""
        limits = []
        for v in values_ms:
            us = int(v * 1000.0 + 0.5)
            limits.append(self._index(us if us <= _MAX_US else _MAX_US))
        out: list[int] = []
        items = sorted(self.counts.items())
        seen = j = 0
        for limit in limits:
            while j < len(items) and items[j][0] < limit:
                seen += items[j][1]
                j += 1
            out.append(seen)
        return out

    def summary(self) -> dict[str, float | int | None]:
        """mean, p50, p90, p95, p99, max (ms) and the sample count."""
        out: dict[str, float | int | None] = {"count": self.count, "mean": self.mean}
        for p in PERCENTILES:
            out[f"p{p}"] = self.percentile(p)
        out["max"] = self.max if self.count else None
        out["min"] = self.min if self.count else None
        return out

    # -- wire format: plain JSON/msgpack types, sparse -------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "b": list(self.counts.keys()),
            "c": list(self.counts.values()),
            "n": self.count,
            "s": self.total,
            "lo": self.min if self.count else None,
            "hi": self.max if self.count else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        h = cls()
        h.counts = dict(zip(data["b"], data["c"], strict=True))
        h.count = data["n"]
        h.total = data["s"]
        if h.count:
            h.min, h.max = data["lo"], data["hi"]
        return h


class CoarseHistogram(Histogram):
    """Same API, buckets about 6 % wide: for per-second time series, not for the summary."""

    __slots__ = ()
    _index = staticmethod(_coarse_index)
    _linear, _half = _C_LINEAR, _C_HALF
