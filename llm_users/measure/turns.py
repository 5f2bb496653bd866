"""Conversations' figures: per turn index (TTFT, E2E, prompt tokens), conversations completed
and requests whose history was truncated. Mergeable, like the rest of a tally."""

from __future__ import annotations

from typing import Any

from .histogram import Histogram
from .per_request import RequestResult

__all__ = ["TurnRow", "TurnTally"]


class TurnRow:
    """The requests of one turn index."""

    def __init__(self) -> None:
        self.requests = 0  # successful
        self.failures = 0
        self.ttft = Histogram()
        self.e2e = Histogram()
        self.prompt_tokens = 0
        self.with_prompt_tokens = 0

    def add(self, r: RequestResult) -> None:
        if not r.ok:
            self.failures += 1
            return
        self.requests += 1
        if r.ttft_ms is not None:
            self.ttft.record(r.ttft_ms)
        if r.e2e_ms is not None:
            self.e2e.record(r.e2e_ms)
        if r.prompt_tokens is not None:
            self.prompt_tokens += r.prompt_tokens
            self.with_prompt_tokens += 1

    def merge(self, o: TurnRow) -> None:
        self.requests += o.requests
        self.failures += o.failures
        self.ttft.merge(o.ttft)
        self.e2e.merge(o.e2e)
        self.prompt_tokens += o.prompt_tokens
        self.with_prompt_tokens += o.with_prompt_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "ttft": self.ttft.to_dict(),
            "e2e": self.e2e.to_dict(),
            "prompt_tokens": self.prompt_tokens,
            "with_prompt_tokens": self.with_prompt_tokens,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TurnRow:
        row = cls()
        row.requests, row.failures = int(d["requests"]), int(d["failures"])
        row.ttft, row.e2e = Histogram.from_dict(d["ttft"]), Histogram.from_dict(d["e2e"])
        row.prompt_tokens = int(d["prompt_tokens"])
        row.with_prompt_tokens = int(d["with_prompt_tokens"])
        return row

    def summary(self, turn: int) -> dict[str, Any]:
        def three(h: Histogram) -> dict[str, float | None]:
            return {"mean": h.mean, "p50": h.percentile(50), "p99": h.percentile(99)}

        n = self.with_prompt_tokens
        return {
            "turn": turn,
            "requests": self.requests,
            "failures": self.failures,
            "ttft_ms": three(self.ttft),
            "e2e_ms": three(self.e2e),
            "prompt_tokens_mean": self.prompt_tokens / n if n else None,
        }


class TurnTally:
    """Per turn index, plus conversations completed and requests truncated."""

    def __init__(self) -> None:
        self.rows: dict[int, TurnRow] = {}
        self.completed = 0  # conversations whose every turn succeeded
        self.truncated = 0  # requests sent with their oldest turns left out

    @property
    def empty(self) -> bool:
        return not self.rows

    def add(self, r: RequestResult) -> None:
        if r.turn is None:
            return
        row = self.rows.get(r.turn)
        if row is None:
            row = self.rows[r.turn] = TurnRow()
        row.add(r)
        self.completed += r.ok and r.conversation_done
        self.truncated += r.truncated

    def merge(self, o: TurnTally) -> None:
        for turn, row in o.rows.items():
            self.rows.setdefault(turn, TurnRow()).merge(row)
        self.completed += o.completed
        self.truncated += o.truncated

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": {str(t): row.to_dict() for t, row in self.rows.items()},
            "completed": self.completed,
            "truncated": self.truncated,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TurnTally:
        t = cls()
        t.rows = {int(k): TurnRow.from_dict(v) for k, v in d.get("rows", {}).items()}
        t.completed, t.truncated = int(d.get("completed", 0)), int(d.get("truncated", 0))
        return t

    def summary(self) -> list[dict[str, Any]]:
        """The summary JSON's ``turns``: one row per turn index, in order."""
        return [self.rows[t].summary(t) for t in sorted(self.rows)]
