"""``Histogram.record_many`` (inlined for the per-token path) is ``record`` of each value:
the same buckets, count, min, max and the same sum to the last bit, whatever the values."""

from __future__ import annotations

import math
import random

import pytest

from llm_users.measure.histogram import CoarseHistogram, Histogram

ODD = [-1.0, 0.0, math.nan, math.inf, -math.inf, 1e12, 2.0475, 2.0485]


@pytest.mark.parametrize("cls", [Histogram, CoarseHistogram])
@pytest.mark.parametrize("seed", range(40))
def test_record_many_is_record_of_each(cls: type[Histogram], seed: int) -> None:
    rng = random.Random(seed)
    values = [
        rng.choice([rng.lognormvariate(3, 0.5), rng.random() * 3, rng.choice(ODD), 0.0, 0.0])
        for _ in range(rng.randint(0, 400))
    ]
    one, many = cls(), cls()
    for v in (rng.random() * 50 for _ in range(rng.randint(0, 5))):  # something held before
        one.record(v)
        many.record(v)
    for v in values:
        one.record(v)
    many.record_many(iter(values) if seed % 2 else values)  # any iterable; a list's zeros
    assert (many.counts, many.count, many.total) == (one.counts, one.count, one.total)
    assert (many.min, many.max) == (one.min, one.max)


@pytest.mark.parametrize(
    "values", [[0.0] * 5, [0.0] * 5 + [3.5], [3.5] + [0.0] * 5, [0.0, math.nan, 0.0], []]
)
def test_a_burst_of_zero_gaps_is_counted_as_one_by_one(values: list[float]) -> None:
    one, many = Histogram(), Histogram()
    for v in values:
        one.record(v)
    many.record_many(values)
    assert (many.counts, many.count, many.total) == (one.counts, one.count, one.total)
    assert (many.min, many.max) == (one.min, one.max)
