"""A process's role and its share of the run's work: one rule for every split among workers."""

from __future__ import annotations

import pytest

from llm_users.role import Role, rate_per_worker


def test_ten_over_three_workers_is_four_three_three() -> None:
    assert [Role("worker", i, 3).share(10) for i in range(3)] == [4, 3, 3]
    assert [Role("worker", i, 3).partition for i in range(3)] == [(0, 3), (1, 3), (2, 3)]


@pytest.mark.parametrize("total", [0, 1, 2, 7, 10, 11, 100])
@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7])
def test_the_shares_add_up_to_the_total_and_match_the_rows_each_keeps(
    total: int, workers: int
) -> None:
    roles = [Role("worker", i, workers) for i in range(workers)]
    assert sum(r.share(total) for r in roles) == total
    for r in roles:  # rows i, i+n, ... of a list: exactly share(total) of them
        index, n = r.partition
        assert len(range(total)[index::n]) == r.share(total)


def test_a_local_run_and_the_master_take_everything() -> None:
    assert Role("local").share(7) == 7 and Role("local").partition == (0, 1)
    assert Role("master", 0, 4).share(7) == 7 and Role("master", 0, 4).partition == (0, 1)
    assert Role("worker", 0, 0).share(7) == 7  # no worker count yet: never a division by zero


def test_a_rate_is_shared_evenly() -> None:
    assert rate_per_worker(10.0, 4) == 2.5
    assert rate_per_worker(10.0, 0) == 10.0
