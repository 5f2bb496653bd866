"""The part this process plays in a run: local, master, or worker i of n."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Role"]


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
