"""Every knob of the simulated server, validated; built from a JSON dict or CLI flags.

Standard library only: :mod:`.process` imports it inside gevent-patched test processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from .vocab import VOCABS

__all__ = [
    "DECODE_CLOCKS",
    "FAULTS",
    "FIELD_NAMES",
    "METRICS_MODES",
    "SimConfig",
    "add_arguments",
    "from_namespace",
]

# What a broken or malicious server sends (hostile.py), to prove the client stays bounded.
HOSTILE_FAULTS = (
    "deep_json",  # a 200 stream whose second event is JSON nested 1,000 deep
    "deep_error",  # an HTTP 500 whose JSON body is nested 1,000 deep
    "script_flood",  # an HTTP 502 HTML page of 64 KiB of repeated "<script"
    "endless_tokens",  # a 200 stream of valid one-token events that never ends
    "held_open",  # a complete stream, [DONE] included, whose body is then held open
)
FAULTS = (
    "http_error",
    "rate_limit",
    "error_event",
    "bad_json",
    "drop",
    "truncate",
    "stall",
    "reset",
    *HOSTILE_FAULTS,  # hostile.py: what a broken or malicious server sends
)
LINE_ENDINGS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}
ERROR_BODIES = ("json", "html", "empty")
METRICS_MODES = ("on", "off", "garbage", "huge", "slow")
DECODE_CLOCKS = ("per-stream", "global")
REASONING_FIELDS = ("reasoning_content", "reasoning")


@dataclass(frozen=True)
class SimConfig:
    """Server behaviour; times in milliseconds. Immutable: updates make a new instance."""

    model_name: str = "sim-model"
    # When set, /v1/* answers 401 unless "Authorization: Bearer <api_key>" (/v1/messages:
    # "x-api-key: <api_key>", as Anthropic's API).
    api_key: str = ""
    # Generation timing and length.
    ttft_ms: float = 50.0
    itl_ms: float = 10.0
    step_ms_per_request: float = 0.0  # each decode step: itl_ms + this * running requests
    prefill_ms_per_1k_tokens: float = 0.0
    decode_clock: str = "per-stream"
    tokens_per_chunk: int = 1
    output_tokens: int = 0  # 0: follow the request's max_tokens (else 64)
    vocab: str = "en"
    role_chunk: bool = True
    reasoning_tokens: int = 0
    reasoning_field: str = "reasoning_content"
    # Prefix cache (in the simulator's tokens, whole blocks).
    prefix_cache: bool = False
    cache_block_tokens: int = 16
    cached_prefill_ms_per_1k_tokens: float = 0.0
    prefix_cache_blocks: int = 65_536
    # Scheduling and the /metrics page.
    max_running: int = 0
    kv_cache_tokens: int = 1_000_000
    metrics: str = "on"
    metrics_slow_ms: float = 5000.0
    # The GPUs' DCGM page (GET /dcgm/metrics): power follows the running requests.
    gpu_idle_w: float = 60.0
    gpu_w_per_request: float = 20.0
    gpus: int = 1
    gpu_memory_mib: float = 73728.0
    # Stream shape.
    line_ending: str = "lf"
    no_space: bool = False
    comments: bool = False
    fields: bool = False
    keepalive_ms: float = 0.0
    empty_deltas: bool = False
    split_bytes: int = 0
    split_delay_ms: float = 1.0
    merge_events: int = 0
    burst: bool = False
    no_done: bool = False
    # Faults.
    fault: str | None = None
    faults: tuple[str, ...] = ()
    fault_every: int = 1
    fault_first: int = 0
    fault_rate: float = 0.0
    fault_after: int = 3
    error_status: int = 500
    error_body: str = "json"
    stall_ms: float = 5000.0
    # Close the connection after every streamed response, while its headers say
    # "Keep-Alive: timeout=5, max=100" and no "Connection: close" (as llama.cpp's server).
    close_after_stream: bool = False
    seed: int = 0
    # Ground-truth records.
    max_records: int = 100_000
    record_tokens: bool = True
    record_headers: str = ""  # request headers (comma-separated names) kept in each record
    # A planted leak (vLLM #10087, #23697): a running request the client hangs up on keeps its
    # slot, as if still generating; the running gauge never comes back down.
    leak_cancelled: bool = False

    def __post_init__(self) -> None:
        # Lists arrive from JSON; keep the instance hashable and immutable.
        if not isinstance(self.faults, tuple):
            object.__setattr__(self, "faults", tuple(self.faults or ()))
        if self.fault == "":
            object.__setattr__(self, "fault", None)
        _validate(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimConfig:
        """Build from a JSON object; unknown keys raise ``ValueError`` naming them."""
        return cls().updated(data)

    def updated(self, changes: dict[str, Any]) -> SimConfig:
        """A copy with ``changes`` applied and validated."""
        if not isinstance(changes, dict):
            raise ValueError("config must be a JSON object")
        unknown = sorted(set(changes) - set(FIELD_NAMES))
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}")
        coerced = {k: _coerce(k, v) for k, v in changes.items()}
        return dataclasses.replace(self, **coerced)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every knob."""
        data = dataclasses.asdict(self)
        data["faults"] = list(self.faults)
        return data


FIELD_NAMES = tuple(f.name for f in fields(SimConfig))
_TYPES = {f.name: f.type for f in fields(SimConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Check one JSON value's type against the field; ints are accepted for floats."""
    kind = _TYPES[name]
    ok = True
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "str | None":
        ok = value is None or isinstance(value, str)
    elif name == "faults":
        if isinstance(value, str):  # the CLI form: comma-separated
            value = [v for v in value.split(",") if v]
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    if not ok:
        raise ValueError(f"config key {name!r}: bad value {value!r} (expected {kind})")
    return value


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _validate(c: SimConfig) -> None:
    timings = ("ttft_ms", "itl_ms", "step_ms_per_request", "keepalive_ms", "split_delay_ms")
    costs = (
        "prefill_ms_per_1k_tokens",
        "cached_prefill_ms_per_1k_tokens",
        "metrics_slow_ms",
        "gpu_idle_w",
        "gpu_w_per_request",
        "gpu_memory_mib",
    )
    for name in (*timings, "stall_ms", *costs):
        value = getattr(c, name)
        _check(math.isfinite(value) and value >= 0, f"{name} must be >= 0")
    for name in ("output_tokens", "reasoning_tokens", "split_bytes", "merge_events", "max_running"):
        _check(getattr(c, name) >= 0, f"{name} must be >= 0")
    _check(c.fault_first >= 0 and c.fault_after >= 0, "fault_first/fault_after must be >= 0")
    _check(c.tokens_per_chunk >= 1, "tokens_per_chunk must be >= 1")
    _check(c.fault_every >= 1, "fault_every must be >= 1")
    _check(c.max_records >= 1, "max_records must be >= 1")
    _check(c.gpus >= 1, "gpus must be >= 1")
    for name in ("cache_block_tokens", "prefix_cache_blocks", "kv_cache_tokens"):
        _check(getattr(c, name) >= 1, f"{name} must be >= 1")
    _check(c.metrics in METRICS_MODES, f"metrics must be one of {list(METRICS_MODES)}")
    _check(c.decode_clock in DECODE_CLOCKS, f"decode_clock must be one of {list(DECODE_CLOCKS)}")
    _check(c.decode_clock == "per-stream" or c.itl_ms > 0, "decode_clock global needs itl_ms > 0")
    _check(
        c.decode_clock == "per-stream" or c.step_ms_per_request == 0,
        "step_ms_per_request needs decode_clock per-stream (the global clock's period is fixed)",
    )
    _check(0.0 <= c.fault_rate <= 1.0, "fault_rate must be within [0, 1]")
    _check(100 <= c.error_status <= 599, "error_status must be an HTTP status")
    _check(bool(c.model_name), "model_name must not be empty")
    _check(c.vocab in VOCABS, f"vocab must be one of {sorted(VOCABS)}")
    _check(c.line_ending in LINE_ENDINGS, f"line_ending must be one of {list(LINE_ENDINGS)}")
    _check(c.error_body in ERROR_BODIES, f"error_body must be one of {list(ERROR_BODIES)}")
    _check(c.reasoning_field in REASONING_FIELDS, f"reasoning_field: {REASONING_FIELDS}")
    for fault in (c.fault, *c.faults):
        _check(fault is None or fault in FAULTS, f"unknown fault {fault!r}; one of {FAULTS}")


_CHOICES = {
    "vocab": sorted(VOCABS),
    "line_ending": list(LINE_ENDINGS),
    "error_body": list(ERROR_BODIES),
    "reasoning_field": list(REASONING_FIELDS),
    "fault": list(FAULTS),
    "metrics": list(METRICS_MODES),
    "decode_clock": list(DECODE_CLOCKS),
}

# Other names of a knob's flag (vLLM calls the cap --max-num-seqs; load testers say batch).
_ALIASES = {"max_running": ("--max-batch",)}

_HELP = {
    "ttft_ms": "time to first token, from the request's first bytes",
    "itl_ms": "time between token events (the global clock's period with --decode-clock global)",
    "step_ms_per_request": "a decode step (one token event) of a stream takes itl_ms + this * "
    "the requests running at that step, as a batch slows when it grows (per-stream clock)",
    "prefill_ms_per_1k_tokens": "extra TTFT per 1,000 uncached prompt tokens",
    "decode_clock": "per-stream: each stream paces itself; global: every stream writes its next "
    "token on the ticks of one clock (start + k * itl_ms), as a batched decode step does",
    "prefix_cache": "cache prompts in whole blocks of tokens; cached tokens skip the prefill cost "
    "and are reported as usage.prompt_tokens_details.cached_tokens",
    "cache_block_tokens": "prefix cache block size in tokens (vLLM's default: 16)",
    "cached_prefill_ms_per_1k_tokens": "extra TTFT per 1,000 cached prompt tokens",
    "prefix_cache_blocks": "prefix cache capacity in blocks (least recently used ones go)",
    "max_running": "batch slots: requests generating at once; more wait in a FIFO queue "
    "(0: no cap; --max-batch is the same knob)",
    "kv_cache_tokens": "KV-cache capacity in tokens (kv_cache_usage_perc = running tokens / it)",
    "metrics": "GET /metrics: on (vLLM names), off (404), garbage (200, not Prometheus), "
    "huge (a valid ~50 MB page), slow (answers after --metrics-slow-ms)",
    "metrics_slow_ms": "delay of GET /metrics with --metrics slow",
    "close_after_stream": "close the connection after every streamed response, while its "
    "headers say 'Keep-Alive: timeout=5, max=100' (as llama.cpp's llama-server does)",
    "record_headers": "request headers to keep in each /sim/records record, comma-separated "
    "names (e.g. x-session-id); traceparent is always kept",
    "leak_cancelled": "a planted leak: a running request whose client hangs up keeps its slot "
    "(num_requests_running stays up), as servers that failed to abort have done",
    "model_name": "the model GET /v1/models lists and responses name",
    "api_key": "when set, /v1/* answers 401 without 'Authorization: Bearer <key>'",
    "tokens_per_chunk": "tokens in each streamed event",
    "output_tokens": "tokens in every answer (0: the request's max_tokens, else 64)",
    "vocab": "the words answers are made of",
    "role_chunk": "chat streams open with an event carrying only the role, as vLLM's do",
    "reasoning_tokens": "reasoning tokens sent before the answer's",
    "reasoning_field": "the delta field that carries reasoning tokens",
    "line_ending": "SSE line ending",
    "no_space": "write 'data:x' without the space after the colon",
    "comments": "put a ': ping' comment line before every event",
    "fields": "give every event 'event:' and 'id:' lines (and 'retry:' on the first)",
    "keepalive_ms": "send a ': keep-alive' comment this often while the first token is due "
    "(0: never)",
    "empty_deltas": "add events with an empty delta between the tokens",
    "split_bytes": "cut every write into pieces of this many bytes (0: whole writes)",
    "split_delay_ms": "pause between the pieces of --split-bytes",
    "merge_events": "send this many events in one write (0 or 1: one each)",
    "burst": "send every event after the first token at once, in one write",
    "no_done": "end streams without the 'data: [DONE]' line",
    "fault": "the fault injected into chosen requests",
    "faults": "comma-separated faults, one drawn per chosen request (overrides --fault)",
    "fault_every": "choose every Nth request for the fault",
    "fault_first": "choose the first N requests instead (0: off)",
    "fault_rate": "choose requests at this random rate instead, seeded by --seed (0: off)",
    "fault_after": "tokens sent before a mid-stream fault strikes",
    "error_status": "HTTP status of the http_error fault",
    "error_body": "body of error answers",
    "stall_ms": "how long the stall fault pauses the stream",
    "seed": "seed of the simulator's random draws (fault rate, fault choice)",
    "max_records": "ground-truth records kept for GET /sim/records (the oldest go)",
    "record_tokens": "record every token's send time in the ground-truth records",
    "gpu_idle_w": "GET /dcgm/metrics (NVIDIA DCGM exporter names): power with nothing running, "
    "all GPUs together",
    "gpu_w_per_request": "power added by each running request; the energy counter integrates "
    "the power over time",
    "gpus": "GPUs on /dcgm/metrics: power, energy and memory split evenly between them",
    "gpu_memory_mib": "framebuffer used, all GPUs together (a server preallocates its KV cache)",
}


def add_arguments(parser: argparse._ActionsContainer) -> None:
    """One ``--kebab-name`` flag per knob; unset flags stay absent from the namespace."""
    for f in fields(SimConfig):
        flags = ("--" + f.name.replace("_", "-"), *_ALIASES.get(f.name, ()))
        kind = _TYPES[f.name]
        common: dict[str, Any] = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": f"{_HELP[f.name]} (default: {f.default!r})",
        }
        if f.name in _CHOICES:
            common["choices"] = _CHOICES[f.name]
        if kind == "bool":
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif kind in ("int", "float"):
            parser.add_argument(*flags, type=int if kind == "int" else float, **common)
        else:
            parser.add_argument(*flags, type=str, **common)


def from_namespace(ns: argparse.Namespace, base: SimConfig | None = None) -> SimConfig:
    """Apply the knob flags present in ``ns`` over ``base``."""
    changes = {name: getattr(ns, name) for name in FIELD_NAMES if hasattr(ns, name)}
    return (base or SimConfig()).updated(changes)
