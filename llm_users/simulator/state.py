"""Server-side ground truth: live config, request ids, fault choice, records and counters,
the admission queue, the prefix cache and the /metrics registry."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from time import perf_counter
from typing import Any

from .config import SimConfig
from .decode_clock import DecodeClock
from .gpu import GpuMeter
from .metrics import Metrics
from .prefix_cache import PrefixCache


class SimState:
    """Mutable state of one simulator; every request snapshots ``config`` on arrival."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.records: deque[dict[str, Any]] = deque(maxlen=config.max_records)
        # Admission (max_running): generating requests by id(record), and a FIFO of waiters.
        # They outlive resets: requests in flight still leave the queue.
        self.running: dict[int, dict[str, Any]] = {}
        self.leaked = 0  # slots kept by cancelled requests (leak_cancelled): never freed
        self.waiters: deque[tuple[asyncio.Future[None], dict[str, Any]]] = deque()
        self.clock = DecodeClock(perf_counter(), self._itl_seconds, self.note_tokens)
        # The GPUs' energy counter: like running requests, it outlives resets.
        self.gpu = GpuMeter(self._gpu_watts, lambda: self.config.gpus)
        self.reset()

    def _gpu_watts(self, running: int) -> float:
        return self.config.gpu_idle_w + self.config.gpu_w_per_request * running

    def _itl_seconds(self) -> float:
        return self.config.itl_ms / 1000.0

    def reset(self) -> None:
        """Forget records and counters; request ids restart at 1."""
        self.records.clear()
        self.last_id = 0
        self._open: set[int] = set()  # id() of records in flight, to ignore pre-reset ones
        self.counts: Counter[str] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.rng = random.Random(self.config.seed)
        self.prefix = PrefixCache(self.config.cache_block_tokens, self.config.prefix_cache_blocks)
        self.metrics = Metrics()
        self.metrics.bind(self.config.model_name)

    def configure(self, changes: dict[str, Any]) -> SimConfig:
        """Apply runtime config changes (``ValueError`` on a bad key or value)."""
        new = self.config.updated(changes)
        if new.max_records != self.config.max_records:
            self.records = deque(self.records, maxlen=new.max_records)
        if "seed" in changes:
            self.rng = random.Random(new.seed)
        if (new.cache_block_tokens, new.prefix_cache_blocks) != (
            self.config.cache_block_tokens,
            self.config.prefix_cache_blocks,
        ):
            self.prefix = PrefixCache(new.cache_block_tokens, new.prefix_cache_blocks)
        self.metrics.bind(new.model_name)
        self.gpu.advance()  # the energy so far at the old power
        self.config = new
        self._admit_waiters()
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
            "started_at": None,  # left the admission queue (max_running): generation began
            "first_token_due": None,  # when the first token was scheduled (prefill included)
            "last_token_at": None,
            "prompt_tokens": None,
            "cached_tokens": 0,
            "messages": None,  # chat and Responses: the role of each message, in order
            "num_messages": None,
            "completion_tokens": 0,
            "events": 0,
            "finish_reason": None,
            "fault": None,
            "status": None,
            "completed": False,
            "client_disconnected": False,
            "cancelled_at": None,  # when the client's hang-up was seen (its FIN or reset)
            "items": None,  # embeddings: the inputs embedded; rerank: the documents scored
        }
        self.records.append(rec)
        self._open.add(id(rec))
        return rec

    def close_record(self, rec: dict[str, Any]) -> None:
        """Count a finished request; counters stay exact when old records roll out."""
        if id(rec) not in self._open:
            return  # it started before a reset
        self._open.discard(id(rec))
        if rec["completed"] and rec["finish_reason"] in ("stop", "length"):
            self.metrics.succeeded(rec["finish_reason"], rec["done_at"] - rec["received_at"])
        self.counts["completed"] += rec["completed"]
        if rec["items"] is not None and rec["completed"]:
            self.counts["pooled_items"] += rec["items"]
        self.counts["client_disconnected"] += rec["client_disconnected"]
        self.counts["cancelled"] += rec["cancelled_at"] is not None
        if rec["fault"]:
            self.counts["faulted"] += 1
            self.by_fault[rec["fault"]] += 1
        self.by_status[str(rec["status"])] += 1

    def release(self, rec: dict[str, Any], leak: bool = False) -> None:
        """``rec`` stops generating (or queueing): the next waiters may start. ``leak`` (the
        ``leak_cancelled`` knob): a running one keeps its slot, never freed."""
        if leak and id(rec) in self.running:
            self.leaked += 1
            return
        if self.running.pop(id(rec), None) is None:
            for i, (fut, waiting) in enumerate(self.waiters):
                if waiting is rec:
                    del self.waiters[i]
                    fut.cancel()
                    break
        self._admit_waiters()

    async def admit(self, rec: dict[str, Any], cfg: SimConfig) -> None:
        """Wait for a running slot (FIFO) when ``max_running`` requests are generating."""
        cap = cfg.max_running
        if cap and (len(self.running) >= cap or self.waiters):
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters.append((fut, rec))
            await fut  # the slot was taken for us by _admit_waiters
            rec["started_at"] = perf_counter()
        else:
            self.running[id(rec)] = rec
            self.gpu.set_running(len(self.running))
            rec["started_at"] = rec["received_at"]  # never queued
        self.counts["prompt_tokens"] += rec["prompt_tokens"]
        self.metrics.started(rec["prompt_tokens"], rec["started_at"] - rec["received_at"])

    def _admit_waiters(self) -> None:
        cap = self.config.max_running
        while self.waiters and (cap == 0 or len(self.running) < cap):
            fut, rec = self.waiters.popleft()
            if not fut.done():
                self.running[id(rec)] = rec
                fut.set_result(None)
        self.gpu.set_running(len(self.running))

    def note_cache(self, queried: int, hits: int) -> None:
        self.counts["prefix_cache_queries"] += queried
        self.counts["prefix_cache_hits"] += hits
        self.metrics.cache_lookup(queried, hits)

    def note_tokens(self, rec: dict[str, Any], at: float, token_events: tuple[int, ...]) -> None:
        """Record token-carrying events written at ``at`` (and observe TTFT or ITL)."""
        if rec["first_token_at"] is None:
            rec["first_token_at"] = at
            self.metrics.observe_ttft(at - rec["received_at"])
        else:
            self.metrics.observe_itl(at - rec["last_token_at"])
        rec["last_token_at"] = at
        if rec["token_times"] is not None:
            rec["token_times"].extend([at] * len(token_events))
            rec["tokens_per_event"].extend(token_events)
        rec["events"] += len(token_events)
        tokens = sum(token_events)
        rec["completion_tokens"] += tokens
        self.counts["generation_tokens"] += tokens
        self.metrics.generated(tokens)

    def kv_cache_usage(self) -> float:
        """Tokens of the running requests (prompt + generated so far) over the capacity."""
        used = sum(r["prompt_tokens"] + r["completion_tokens"] for r in self.running.values())
        return used / self.config.kv_cache_tokens

    def metrics_page(self) -> bytes:
        return self.metrics.page(len(self.running), len(self.waiters), self.kv_cache_usage())

    def gpu_page(self) -> bytes:
        """The DCGM exporter's page: utilisation is the share of batch slots in use."""
        cap, n = self.config.max_running, len(self.running)
        util = 100.0 * min(1.0, n / cap) if cap else (100.0 if n else 0.0)
        return self.gpu.page(util, self.config.gpu_memory_mib)

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
            "cancelled": self.counts["cancelled"],  # hang-ups seen mid-request
            "leaked": self.leaked,
            "pooled_items": self.counts["pooled_items"],  # inputs embedded, documents scored
            "by_status": dict(self.by_status),
            "in_flight": len(self._open),
            "running": len(self.running),
            "waiting": len(self.waiters),
            "prompt_tokens": self.counts["prompt_tokens"],
            "generation_tokens": self.counts["generation_tokens"],
            "prefix_cache_queries": self.counts["prefix_cache_queries"],
            "prefix_cache_hits": self.counts["prefix_cache_hits"],
            "metrics_scrapes": self.counts["metrics_scrapes"],
            "decode_clock": self.clock.stats(),
        }
