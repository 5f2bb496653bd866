"""Server-side ground truth: live config, request ids, fault choice, records and counters."""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Any

from .config import SimConfig


class SimState:
    """Mutable state of one simulator; every request snapshots ``config`` on arrival."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.records: deque[dict[str, Any]] = deque(maxlen=config.max_records)
        self.reset()

    def reset(self) -> None:
        """Forget records and counters; request ids restart at 1."""
        self.records.clear()
        self.last_id = 0
        self._open: set[int] = set()  # id() of records in flight, to ignore pre-reset ones
        self.counts: Counter[str] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.rng = random.Random(self.config.seed)

    def configure(self, changes: dict[str, Any]) -> SimConfig:
        """Apply runtime config changes (``ValueError`` on a bad key or value)."""
        new = self.config.updated(changes)
        if new.max_records != self.config.max_records:
            self.records = deque(self.records, maxlen=new.max_records)
        if "seed" in changes:
            self.rng = random.Random(new.seed)
        self.config = new
        return new

    def open_record(self, path: str, received_at: float, cfg: SimConfig) -> dict[str, Any]:
        """A new request: the next id and its record, listed at once (in flight)."""
        self.last_id += 1
        self.counts["requests"] += 1
        rec: dict[str, Any] = {
            "id": self.last_id,
            "response_id": None,
            "path": path,
            "stream": False,
            "model": None,
            "max_tokens": None,
            "received_at": received_at,  # the request's first bytes (see arrival.py)
            "dispatched_at": None,  # when the handler started: received_at + intake backlog
            "headers_sent_at": None,
            "first_token_at": None,
            "token_times": [] if cfg.record_tokens else None,
            "tokens_per_event": [] if cfg.record_tokens else None,
            "done_at": None,
            "prompt_tokens": None,
            "completion_tokens": 0,
            "events": 0,
            "finish_reason": None,
            "fault": None,
            "status": None,
            "completed": False,
            "client_disconnected": False,
        }
        self.records.append(rec)
        self._open.add(id(rec))
        return rec

    def close_record(self, rec: dict[str, Any]) -> None:
        """Count a finished request; counters stay exact when old records roll out."""
        if id(rec) not in self._open:
            return  # it started before a reset
        self._open.discard(id(rec))
        self.counts["completed"] += rec["completed"]
        self.counts["client_disconnected"] += rec["client_disconnected"]
        if rec["fault"]:
            self.counts["faulted"] += 1
            self.by_fault[rec["fault"]] += 1
        self.by_status[str(rec["status"])] += 1

    def choose_fault(self, cfg: SimConfig, rid: int) -> str | None:
        """The fault for request ``rid``, or None (by rate, first-N or every-Nth)."""
        names = cfg.faults or ((cfg.fault,) if cfg.fault else ())
        if not names:
            return None
        if cfg.fault_rate > 0:
            hit = self.rng.random() < cfg.fault_rate
        elif cfg.fault_first > 0:
            hit = rid <= cfg.fault_first
        else:
            hit = rid % cfg.fault_every == 0
        if not hit:
            return None
        return names[0] if len(names) == 1 else self.rng.choice(names)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.counts["requests"],
            "completed": self.counts["completed"],
            "faulted": self.counts["faulted"],
            "by_fault": dict(self.by_fault),
            "client_disconnected": self.counts["client_disconnected"],
            "by_status": dict(self.by_status),
            "in_flight": len(self._open),
        }
