"""The part this process plays in a run: local, master, or worker i of n; and its share."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Role", "rate_per_worker"]


@dataclass(frozen=True)
class Role:
    """Which part this process plays: ``local``, ``master`` or ``worker`` (index of ``workers``)."""

    kind: str = "local"
    index: int = 0
    workers: int = 1

    @property
    def is_master(self) -> bool:
        return self.kind == "master"

    @property
    def is_worker(self) -> bool:
        return self.kind == "worker"

    @property
    def sends_requests(self) -> bool:
        return self.kind != "master"

    @property
    def partition(self) -> tuple[int, int]:
        """``(i, n)``: worker i of n takes items i, i+n, i+2n, ... of a list (dataset rows,
        trace rows); ``(0, 1)`` for a local run or the master, which take all."""
        n = max(1, self.workers) if self.is_worker else 1
        return self.index % n, n

    def share(self, total: int) -> int:
        """How many of ``total`` things (requests, rows) this process takes: as many as the
        items i, i+n, ... of :attr:`partition` are, so the workers' shares add up to
        ``total``. 10 over 3 workers: 4, 3, 3."""
        index, n = self.partition
        return total // n + (1 if index < total % n else 0)


def rate_per_worker(rate: float, workers: int) -> float:
    """Each worker's part of a rate per second (the master's split): a rate needs no whole
    numbers, so the workers share it evenly."""
    return rate / max(1, workers)
