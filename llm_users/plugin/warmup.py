"""Warm-up: the first requests (``--warmup-requests``) or seconds (``--warmup-time``) of a test
are sent but kept out of every figure. Decided per request, at its start."""

from __future__ import annotations

import time

from ..role import Role

__all__ = ["WarmupGate"]


class WarmupGate:
    """Says, at each request's start, whether that request is a warm-up one."""

    def __init__(self) -> None:
        self.requests = 0  # this process's warm-up requests (its share of the whole test's)
        self.seconds = 0.0
        self._started = 0
        self._t0 = 0.0

    def start(self, requests: int, seconds: float, role: Role) -> None:
        """A test starts (on each worker: from its own test start)."""
        self.requests = role.share(requests)
        self.seconds = seconds
        self._started = 0
        self._t0 = time.monotonic()

    @property
    def active(self) -> bool:
        return bool(self.requests or self.seconds)

    def starts(self) -> bool:
        """A request starts now: is it warm-up? (Counts it: call once per request.)"""
        if not self.active:
            return False
        n, self._started = self._started, self._started + 1
        if n < self.requests:
            return True
        return bool(self.seconds) and time.monotonic() - self._t0 < self.seconds
