"""The plugin's Locust options, and one validated, frozen :class:`Settings` built from them.

Each option is declared once, as a field of :class:`Settings` (see declare.py); from that
they are added to Locust's own parser (command line, config files, ``LOCUST_*`` environment
variables, the web UI form, grouped in --help), and :meth:`Settings.from_options` checks
them all once, raising :class:`~llm_users.errors.ConfigError` naming the option and the value.

Its length is the table of options itself: one declaration each, grouped as in --help, so it
reads better whole than split by group.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import ConfigError
from ..wire.endpoints import ENDPOINTS, POOLING
from ..workload.prompts import PROMPT_TYPES
from .declare import (
    Invalid,
    boolean,
    declared,
    fraction,
    non_negative,
    number,
    opt,
    percent,
    positive,
    register,
    size,
    stripped,
    text,
    whole,
)

__all__ = ["Secret", "Settings", "add_arguments"]

# The original benchmark script also sends repetition_penalty 1.0: that is the neutral value (no
# penalty), and it is not an OpenAI field (OpenAI and `transformers serve` reject it): left out.
SEED_SAMPLING = {"temperature": 0.01, "top_p": 0.3}
SEED_SYSTEM_PROMPT = "You are a helpful assistant."


class Secret(str):
    """A string option whose value is kept out of sight.

    It *is* the empty string to everything that prints, serialises or renders it (Locust's
    web UI form defaults, JSON, logs); the value is only reachable as ``.value``.
    """

    value: str

    def __new__(cls, value: object = "") -> Secret:
        self = super().__new__(cls, "")
        self.value = getattr(value, "value", None) or str(value or "")
        return self

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"


def add_arguments(parser: Any) -> None:
    """Register the options on Locust's parser, under their groups' titles in --help
    (idempotent: the web UI fires the parser hook again on every load of its page)."""
    options = [o for _, o in declared(Settings)]
    if any(options[0].flag in a.option_strings for a in parser._actions):
        return
    register(parser, options)


# -- parsers of this plugin's own kinds of value (see declare.py for the common ones) --------


def _on(value: str) -> bool:
    return value == "on"


def _max_tokens(value: Any) -> int | None:
    return whole(value) or None  # 0: not sent


def _key(value: Any) -> str:
    return (getattr(value, "value", None) or str(value or "")).strip()


# --turns all: every turn of each dataset conversation. Decoded only by Settings.turns_kept
# and Settings.turns_shown: nothing else compares with it.
TURNS_ALL = -1


def _turns(value: Any) -> int:
    given = stripped(value).lower()
    if given == "all":
        return TURNS_ALL
    try:
        return whole(given or "0")
    except Invalid:
        raise Invalid(f"must be a whole number or all, got {value!r}") from None


def _seed(value: Any) -> int | None:
    return None if value is None or str(value).strip() == "" else whole(value)


def _existing_file(value: Any) -> str:
    path = stripped(value)
    if path and not os.path.isfile(path):
        raise Invalid(f"file not found: {path!r}")
    return path


def _json_object(value: Any) -> dict[str, Any]:
    given = stripped(value)
    if not given:
        return {}
    try:
        obj = orjson.loads(given)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"is not valid JSON ({exc}): {given[:80]!r}") from None
    if not isinstance(obj, dict):
        raise Invalid(f"must be a JSON object, got {given[:80]!r}")
    return obj


def _headers(values: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(values, str):  # one header from an environment variable or the web form
        values = [values] if values else []
    out = []
    for raw in values or []:
        name, sep, val = str(raw).partition(":")
        if not sep or not name.strip() or any(c in name for c in " \t\r\n"):
            raise Invalid(f"must look like 'Name: value', got {str(raw)[:80]!r}")
        if "\r" in val or "\n" in val:
            raise Invalid(f"value must be on one line: {name.strip()!r}")
        out.append((name.strip(), val.strip()))
    return tuple(out)


def _header_name(value: Any) -> str:
    """An HTTP header name (a token: letters, digits and !#$%&'*+-.^_`|~), or "" for none."""
    given = stripped(value)
    if given and not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in given):
        raise Invalid(f"must be a header name such as x-session-id, got {given[:80]!r}")
    if not given.isascii():
        raise Invalid(f"must be an ASCII header name, got {given[:80]!r}")
    return given


def _share(value: Any) -> float:
    """A share of requests, 0 to 1 (both included)."""
    x = number(value)
    if not 0 <= x <= 1:
        raise Invalid(f"must be a share from 0 to 1, got {x:g}")
    return x


def _metrics_source(value: Any) -> str:
    """``auto``, ``off`` or the http(s) URL of a server's Prometheus /metrics."""
    given = stripped(value) or "auto"
    if given in ("auto", "off"):
        return given
    if not given.startswith(("http://", "https://")) or len(given.split("://", 1)[1]) == 0:
        raise Invalid(f"must be auto, off or an http(s) URL, got {given[:80]!r}")
    return given


def _gpu_source(value: Any) -> str:
    """``off`` (the default), ``auto`` or the http(s) URL of a GPU exporter's page."""
    given = stripped(value) or "off"
    return given if given == "off" else _metrics_source(given)


from ..measure.figures import SLO_KEYS  # noqa: E402  (the figures registry says which are SLO keys)


def _slo(value: Any) -> dict[str, float]:
    given = stripped(value)
    out: dict[str, float] = {}
    if not given:
        return out
    for part in given.split(","):
        name, sep, num = part.partition("=")
        name = name.strip()
        if not sep or name not in SLO_KEYS:
            raise Invalid(
                f"must look like ttft_ms=500,tpot_ms=50 (keys: {', '.join(SLO_KEYS)}); "
                f"got {part.strip()!r}"
            )
        try:
            limit = float(num)
        except ValueError:
            raise Invalid(f"{name} needs a number of ms, got {num.strip()!r}") from None
        if not limit > 0:
            raise Invalid(f"{name} must be > 0, got {num.strip()!r}")
        out[name] = limit
    return out


def _sweep(value: Any) -> tuple[float, ...]:
    given = stripped(value)
    if not given:
        return ()
    try:
        steps = tuple(float(x) for x in given.split(",") if x.strip())
    except ValueError:
        raise Invalid(f"must be numbers separated by commas, got {given!r}") from None
    if not steps or any(not x > 0 for x in steps):
        raise Invalid(f"steps must all be > 0, got {given!r}")
    return steps


def _seconds_or_range(value: Any) -> tuple[float, float]:
    """ "2" -> (2, 2); "1-3" -> (1, 3): the bounds of a uniform draw."""
    given = stripped(value) or "0"
    try:
        low = high = float(given)
    except ValueError:
        low_text, _, high_text = given.partition("-")
        try:
            low, high = float(low_text), float(high_text)
        except ValueError:
            raise Invalid(
                f"must be seconds (2) or a range of seconds (1-3), got {value!r}"
            ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise Invalid(f"must be a finite number of seconds, got {value!r}")
    if low < 0:
        raise Invalid(f"must be >= 0, got {value!r}")
    if high < low:
        raise Invalid(f"range must go from low to high, got {value!r}")
    return low, high


@dataclass(frozen=True)
class Settings:
    """Everything a user needs, validated; built once per test start.

    Each field is declared once, as its option: flag, default as given, choices, help,
    LOCUST_* variable, web form or not, secret or not, and group (declare.py).
    """

    # -- requests ------------------------------------------------------------------------
    endpoint: str = opt(
        "chat",
        choices=["chat", "completions", "responses", "messages", "embeddings", "rerank"],
        group="requests",
        help="chat = /v1/chat/completions, completions = /v1/completions, responses = "
        "/v1/responses (the Responses API), messages = /v1/messages (Anthropic's Messages API: "
        "x-api-key and anthropic-version headers), embeddings = /v1/embeddings, rerank = "
        "/v1/rerank (never streamed)",
    )
    stream: bool = opt(
        True,
        parse=boolean,
        group="requests",
        help="Stream responses (SSE) and measure TTFT, ITL, TPOT; --no-stream: whole responses",
    )
    max_tokens: int | None = opt(
        128,
        parse=_max_tokens,
        group="requests",
        help="max_tokens sent with every request (0: not sent)",
    )
    model: str = opt(
        "",
        parse=stripped,
        group="requests",
        help="Model name sent in requests (default: the first model GET /v1/models lists)",
    )
    system_prompt: str = opt(
        SEED_SYSTEM_PROMPT,
        parse=text,
        group="requests",
        help="System message for chat requests (empty: none)",
    )
    sampling: str = opt(
        "none",
        choices=["none", "original"],
        group="requests",
        help="none = send no sampling parameters (the server's defaults); original = send the "
        "original benchmark script's temperature 0.01 and top_p 0.3",
    )
    # The request body's extra fields: --sampling's, then this JSON over them (from_options).
    extra_body: dict[str, Any] = opt(
        "",
        parse=_json_object,
        group="requests",
        help="JSON object merged into every request body, e.g. '{\"ignore_eos\": true}'",
    )
    stream_usage: bool = opt(
        "on",
        choices=["on", "off"],
        parse=_on,
        group="requests",
        help="Ask for usage in streams (stream_options.include_usage)",
    )
    # -- today's traffic: cancellations, embeddings and rerank (one block) ----------------
    cancel_rate: float = opt(
        0.0,
        parse=_share,
        group="requests",
        help="Share of requests (0 to 1) the client hangs up on after --cancel-after; drawn "
        "per request, repeatable with --seed; counted as cancelled, in no latency figure",
    )
    cancel_after_ms: float = opt(
        0.0,
        flag="--cancel-after",
        parse=non_negative,
        group="requests",
        help="Milliseconds after which a request chosen by --cancel-rate is hung up on, from "
        "--cancel-from",
    )
    cancel_from: str = opt(
        "sent",
        choices=["sent", "first-token"],
        group="requests",
        help="Where --cancel-after counts from: the request being sent, or its first token "
        "(streaming only)",
    )
    embedding_batch: int = opt(
        1,
        parse=whole,
        group="requests",
        help="Texts per request (the input list) with --endpoint embeddings, from the prompt "
        "source",
    )
    rerank_documents: int = opt(
        8,
        parse=whole,
        group="requests",
        help="Documents per request with --endpoint rerank, scored against one query, all from "
        "the prompt source",
    )

    # -- connection ----------------------------------------------------------------------
    api_key: str = opt(
        Secret(""),
        parse=_key,
        secret=True,
        group="connection",
        help="API key sent as 'Authorization: Bearer' (as x-api-key with --endpoint messages; "
        "default: $OPENAI_API_KEY)",
    )
    headers: tuple[tuple[str, str], ...] = opt(
        [],
        flag="--header",
        parse=_headers,
        web=False,
        group="connection",
        help="Extra request header 'Name: value' (repeatable)",
    )
    first_token_timeout: float = opt(
        120.0,
        parse=positive,
        group="connection",
        help="Seconds to wait for the first token before failing the request",
    )
    request_timeout: float = opt(
        600.0,
        parse=positive,
        group="connection",
        help="Seconds for a whole request before failing it",
    )
    connect_timeout: float = opt(
        10.0,
        parse=positive,
        web=False,
        group="connection",
        help="Seconds to open a connection",
    )
    max_event_bytes: int = opt(
        "8MiB",
        parse=size,
        web=False,
        group="connection",
        help="Largest SSE event (or unfinished line) accepted; past it the request fails as "
        "oversized_response (8MiB: far above any real model's single event)",
    )
    max_response_bytes: int = opt(
        "64MiB",
        parse=size,
        web=False,
        group="connection",
        help="Largest non-streamed response body accepted; past it the request fails as "
        "oversized_response (64MiB: a 32k-token answer is ~130KiB of JSON)",
    )
    max_output_factor: float = opt(
        4.0,
        parse=non_negative,
        web=False,
        group="connection",
        help="A stream may carry at most this many times max_tokens events (+64); past it "
        "the request fails as oversized_response (4: a server bound by max_tokens sends "
        "one event per token at most, with room for empty ones; 0: no such bound)",
    )
    insecure: bool = opt(
        False,
        parse=boolean,
        web=False,
        group="connection",
        help="Do not verify TLS certificates (warns)",
    )
    ca_bundle: str = opt(
        "",
        parse=_existing_file,
        web=False,
        group="connection",
        help="PEM file of CA certificates to verify the server with",
    )
    timestamps: str = opt(
        "auto",
        choices=["auto", "kernel", "user"],
        web=False,
        group="connection",
        help="When each read's data arrived: kernel = the kernel's receive stamps (Linux, "
        "plain http), exact however busy the load generator is; user = the clock after each "
        "read returns; auto = kernel where available, else user",
    )
    preflight: bool = opt(
        "on",
        choices=["on", "off"],
        parse=_on,
        group="connection",
        help="Check the server (GET /v1/models) before the test starts",
    )
    # Request identity: trace context and session affinity.
    trace_context: bool = opt(
        "on",
        choices=["on", "off"],
        parse=_on,
        group="connection",
        help="Send a W3C traceparent header with new random ids on every request (sampled), "
        "kept in the records as trace_id and span_id, so the server's spans join them",
    )
    session_header: str = opt(
        "",
        parse=_header_name,
        group="connection",
        help="Send a session id in this header, e.g. x-session-id (routers such as llm-d and "
        "Dynamo route on one): one id per conversation with --turns, else one per user",
    )

    # -- prompts -------------------------------------------------------------------------
    prompt_type: str = opt(
        "0",
        choices=sorted(PROMPT_TYPES),
        parse=PROMPT_TYPES.__getitem__,
        group="prompts",
        help="The original benchmark script's prompt sets: 0|short = one short question, "
        "1|long = a ~2,000-character article to summarise, 2|random = one of four short questions",
    )
    prompt_language: str = opt(
        "en",
        choices=["en", "zh"],
        group="prompts",
        help="Language of the built-in prompts",
    )
    dataset: str = opt(
        "",
        parse=_existing_file,
        group="prompts",
        web=False,
        help="Prompts from a file: text (one per line), JSONL ({prompt} or {messages}) or "
        "ShareGPT JSON (first human turn); replaces --prompt-type",
    )
    dataset_format: str = opt(
        "auto",
        choices=["auto", "text", "jsonl", "sharegpt"],
        web=False,
        group="prompts",
        help="Format of --dataset",
    )
    dataset_order: str = opt(
        "sequential",
        choices=["sequential", "shuffle"],
        web=False,
        group="prompts",
        help="Order prompts are sent in (shuffle: seeded, different per worker)",
    )
    dataset_output_len: bool = opt(
        "off",
        choices=["on", "off"],
        parse=_on,
        web=False,
        group="prompts",
        help="ShareGPT: use the recorded answer's length as that request's max_tokens",
    )
    input_tokens: int = opt(
        0,
        parse=whole,
        group="prompts",
        help="Synthetic prompts of exactly N tokens by --tokenizer, different per request",
    )
    input_tokens_spread: float = opt(
        0.0,
        parse=fraction,
        web=False,
        group="prompts",
        help="Draw each prompt's length from N*(1±spread), e.g. 0.2",
    )
    turns: int = opt(
        "0",
        parse=_turns,
        group="prompts",
        help="Multi-turn conversations of N turns (chat): each turn sends the whole history; "
        "with --dataset, each record is a conversation and N keeps its first N turns "
        "(all: every turn); 0: single requests",
    )
    history: str = opt(
        "server",
        choices=["server", "recorded"],
        group="prompts",
        help="Conversations: the answers sent back as history, the server's own or the "
        "dataset's recorded ones",
    )
    max_context_tokens: int = opt(
        0,
        parse=whole,
        group="prompts",
        help="Conversations: leave out the oldest turns until the history fits N tokens by "
        "--tokenizer (system prompt and latest turn always kept); 0: no limit",
    )
    tokenizer: str = opt(
        "",
        parse=stripped,
        group="prompts",
        web=False,
        help="Hugging Face tokenizer folder or name, to count follow tokens as the original "
        "benchmark script does (loaded once, before users start; local to each worker)",
    )
    prefix_tokens: int = opt(
        0,
        parse=whole,
        group="prompts",
        help="Shared-prefix workload: every prompt starts with one of --prefix-count shared "
        "prefixes of exactly N tokens by --tokenizer, then a unique suffix of --input-tokens",
    )
    prefix_count: int = opt(
        1,
        parse=whole,
        group="prompts",
        help="Number of distinct shared prefixes (each request draws one, seeded by --seed)",
    )
    prefix_in: str = opt(
        "user",
        choices=["system", "user"],
        group="prompts",
        help="Chat: the shared prefix is the system prompt, or the start of the user turn",
    )
    trace: str = opt(
        "",
        parse=_existing_file,
        web=False,
        group="prompts",
        help="Replay a Mooncake-format JSONL trace (timestamp ms, input_length, output_length, "
        "hash_ids): each request at its time, with prompts sharing the blocks of shared hash ids",
    )
    trace_speed: float = opt(
        1.0,
        parse=positive,
        web=False,
        group="prompts",
        help="Time scale of --trace: 2 replays it twice as fast",
    )
    trace_limit: int = opt(
        0,
        parse=whole,
        web=False,
        group="prompts",
        help="Replay only the first N rows of --trace (0: all)",
    )
    trace_block_tokens: int = opt(
        512,
        parse=whole,
        web=False,
        group="prompts",
        help="Tokens per hash id block of --trace (the last block of a prompt may be partial)",
    )

    # -- load ----------------------------------------------------------------------------
    requests_per_user: int = opt(
        0,
        parse=whole,
        group="load",
        help="Each user sends N requests then stops; the test ends when all are done (0: no limit)",
    )
    request_rate: float = opt(
        0.0,
        parse=non_negative,
        group="load",
        help="Open loop: requests/s for the whole test (all workers); -u is the pool of users "
        "that can be in flight (0: closed loop, each user back to back)",
    )
    arrivals: str = opt(
        "poisson",
        choices=["poisson", "constant"],
        group="load",
        help="Open loop arrival process",
    )
    seed: int | None = opt(
        "",
        parse=_seed,
        web=False,
        group="load",
        help="Make random draws repeatable: arrival times, shuffled dataset order, synthetic "
        "and random prompts (each worker its own stream, from this seed and its index)",
    )
    sweep: tuple[float, ...] = opt(
        "",
        parse=_sweep,
        group="load",
        help="Step through these user counts (or rates with --sweep-of rate), e.g. 1,2,4,8; "
        "one summary row per step",
    )
    sweep_of: str = opt(
        "users",
        choices=["users", "rate"],
        group="load",
        help="What --sweep steps: the user count or the open-loop request rate",
    )
    sweep_step_time: float = opt(
        30.0,
        parse=positive,
        group="load",
        help="Seconds per sweep step",
    )
    sweep_step_requests: int = opt(
        0,
        parse=whole,
        group="load",
        help="End a sweep step once this many requests of it have finished (0: by time)",
    )
    # -- capacity (the search, the steady window, the cost of a token): one block -------
    search: str = opt(
        "off",
        choices=["off", "users", "rate"],
        group="load",
        help="Find the most users (or requests/s) that meet --slo at --slo-target: probe 1, 2, "
        "4... until one fails, then bisect",
    )
    search_resolution: float = opt(
        0.0,
        parse=non_negative,
        group="load",
        help="Stop bisecting when the passing and failing loads are this close (0: 1 user, "
        "or 5 percent of the rate)",
    )
    search_warmup: float = opt(
        5.0,
        parse=non_negative,
        group="load",
        help="Seconds at the start of each probe (after its users are spawned) whose requests "
        "are kept out of its figures",
    )
    search_min_time: float = opt(
        10.0,
        parse=non_negative,
        group="load",
        help="A probe passes no sooner than this many measured seconds",
    )
    search_min_requests: int = opt(
        40,
        parse=whole,
        group="load",
        help="A probe is decided no sooner than this many measured requests (40 of 40 meeting "
        "the SLO: the 95 percent interval's lower end is 91.2 percent)",
    )
    search_probe_time: float = opt(
        120.0,
        parse=positive,
        group="load",
        help="The most measured seconds of one probe: undecided by then, it is judged by its "
        "point estimate and said to straddle the target",
    )
    search_max: float = opt(
        1024.0,
        parse=positive,
        group="load",
        help="The highest load the search probes (users, or requests/s)",
    )
    gpu_metrics: str = opt(
        "off",
        parse=_gpu_source,
        web=False,
        group="reports",
        help="A GPU exporter's Prometheus page (NVIDIA DCGM exporter names), scraped with "
        "--server-metrics: a URL, auto (port 9400 on the server's host, off if it does not "
        "answer) or off",
    )
    gpu_hour_cost: float = opt(
        0.0,
        parse=non_negative,
        group="reports",
        help="Dollars per GPU-hour: the summary gives dollars per 1M output and total tokens at "
        "the measured throughput (0: no cost figures)",
    )
    gpus: int = opt(
        0,
        parse=whole,
        group="reports",
        help="GPUs serving the model, for the cost (0: as many as the --gpu-metrics page "
        "shows, else 1)",
    )

    think_time: tuple[float, float] = opt(
        "0",
        parse=_seconds_or_range,
        group="load",
        help="Seconds each user waits between its requests: a number (2) or a range (1-3) "
        "drawn uniformly, seeded by --seed",
    )
    warmup_requests: int = opt(
        0,
        parse=whole,
        group="load",
        help="The first N requests of the test (all workers together) are sent but kept out "
        "of every figure",
    )
    warmup_time: float = opt(
        0.0,
        parse=non_negative,
        group="load",
        help="Requests that start in the first S seconds (of each worker) are sent but kept "
        "out of every figure",
    )
    max_failing_seconds: float = opt(
        10.0,
        parse=non_negative,
        web=False,
        group="load",
        help="Stop the test when every request has failed for this long (0: keep going)",
    )

    # -- figures and reports -------------------------------------------------------------
    slo: dict[str, float] = opt(
        "",
        parse=_slo,
        group="reports",
        help="Service-level objectives for goodput, e.g. ttft_ms=500,tpot_ms=50,e2e_ms=20000",
    )
    slo_target: float = opt(
        0.0,
        parse=percent,
        group="reports",
        help="Percent of requests that must meet every --slo; below it the exit code is 3",
    )
    summary_json: str = opt(
        "",
        parse=text,
        web=False,
        group="reports",
        help="Write the summary as JSON to this file at test stop",
    )
    records: str = opt(
        "",
        parse=text,
        web=False,
        group="reports",
        help="Write one JSON line per request to this file, as the test runs",
    )
    html_report: str = opt(
        "",
        parse=text,
        web=False,
        group="reports",
        help="Write an offline HTML report (charts, percentiles, sweep curve) at test stop",
    )
    server_metrics: str = opt(
        "auto",
        parse=_metrics_source,
        web=False,
        group="reports",
        help="The server's Prometheus /metrics, scraped over the test: a URL, auto (<host>/metrics "
        "if it answers at the start) or off",
    )
    server_metrics_interval: float = opt(
        1.0,
        parse=positive,
        web=False,
        group="reports",
        help="Seconds between two scrapes of --server-metrics",
    )
    print_requests: bool = opt(
        False,
        parse=boolean,
        web=False,
        group="reports",
        help="Print one line per finished request in the original benchmark script's format",
    )

    @classmethod
    def from_options(
        cls, opts: Any, environ: dict[str, str] | None = None, master_key: str = ""
    ) -> Settings:
        """Validate ``opts``. Key: --api-key, else the master's (workers), else $OPENAI_API_KEY."""
        env = os.environ if environ is None else environ
        values = {name: o.read(getattr(opts, o.dest, o.default)) for name, o in declared(cls)}
        # Values that come from several options, set before the settings are frozen.
        values["api_key"] = (
            values["api_key"] or master_key.strip() or env.get("OPENAI_API_KEY", "").strip()
        )
        sampling = SEED_SAMPLING if values["sampling"] == "original" else {}
        values["extra_body"] = {**sampling, **values["extra_body"]}
        if values["endpoint"] in POOLING:
            values["stream"] = False  # nothing is generated: a whole JSON answer
        if values["sweep_of"] == "rate" and values["sweep"] and not values["request_rate"]:
            values["request_rate"] = values["sweep"][0]
        s = cls(**values)
        s._check()
        return s

    def _check(self) -> None:
        """Checks that involve several options (each option's own are in its parser)."""
        if self.slo_target and not self.slo:
            raise ConfigError("--slo-target needs --slo (e.g. --slo ttft_ms=500)")
        if self.input_tokens and not self.tokenizer:
            raise ConfigError(f"--input-tokens {self.input_tokens} needs --tokenizer to count them")
        if self.input_tokens and self.dataset:
            raise ConfigError(
                "--input-tokens and --dataset are exclusive: choose one prompt source"
            )
        if self.endpoint == "messages" and self.max_tokens is None:
            raise ConfigError(
                "--endpoint messages needs --max-tokens N > 0 (the Messages API requires "
                "max_tokens), got 0"
            )
        if self.endpoint in POOLING:
            self._check_pooling()
        if self.cancel_from == "first-token" and not self.stream and self.cancel_rate:
            raise ConfigError(
                "--cancel-from first-token needs streaming (a whole response has no first "
                "token): drop --no-stream or use --cancel-from sent"
            )
        self._check_workloads()
        self._check_conversations()
        if self.sweep_of == "users" and any(x != int(x) for x in self.sweep):
            raise ConfigError(f"--sweep user counts must be whole numbers, got {self.sweep}")
        self._check_search()

    def _check_pooling(self) -> None:
        if self.embedding_batch < 1 or self.rerank_documents < 1:
            which = "--embedding-batch" if self.embedding_batch < 1 else "--rerank-documents"
            raise ConfigError(f"{which} must be at least 1, got 0")
        for other, given in (("--turns", self.turns), ("--trace", self.trace)):
            if given:
                raise ConfigError(
                    f"--endpoint {self.endpoint} takes single texts: {other} is for chat"
                )

    @property
    def texts_per_request(self) -> int:
        """Prompts one request carries: an embeddings batch, a rerank query and its
        documents; else one."""
        if self.endpoint == "embeddings":
            return self.embedding_batch
        if self.endpoint == "rerank":
            return 1 + self.rerank_documents
        return 1

    def _check_search(self) -> None:
        if self.search == "off":
            return
        if not self.slo or not self.slo_target:
            raise ConfigError(
                f"--search {self.search} needs --slo and --slo-target (the criterion a load "
                "must meet), e.g. --slo ttft_ms=500 --slo-target 90"
            )
        if self.sweep:
            raise ConfigError("--search and --sweep are exclusive: the search chooses the loads")
        if self.search == "rate" and not self.request_rate:
            raise ConfigError("--search rate needs --request-rate (the first rate to probe)")
        if self.search == "users" and self.search_resolution % 1:
            raise ConfigError(
                "--search-resolution for users must be a whole number, got "
                f"{self.search_resolution:g}"
            )

    def _check_workloads(self) -> None:
        """The shared-prefix and trace workloads: each needs a tokenizer and excludes others."""
        if self.prefix_tokens:
            if not self.tokenizer:
                raise ConfigError(
                    f"--prefix-tokens {self.prefix_tokens} needs --tokenizer to count them"
                )
            if not self.input_tokens:
                raise ConfigError(
                    f"--prefix-tokens {self.prefix_tokens} needs --input-tokens N: the length "
                    "of each request's unique suffix"
                )
            if self.prefix_count < 1:
                raise ConfigError(f"--prefix-count must be at least 1, got {self.prefix_count}")
        if self.trace:
            if not self.tokenizer:
                raise ConfigError(f"--trace {self.trace} needs --tokenizer to build its prompts")
            if self.trace_block_tokens < 1:
                raise ConfigError(
                    f"--trace-block-tokens must be at least 1, got {self.trace_block_tokens}"
                )
            for other, given in (
                ("--dataset", self.dataset),
                ("--input-tokens", self.input_tokens),
                ("--prefix-tokens", self.prefix_tokens),
                ("--request-rate", self.request_rate),
                ("--sweep", self.sweep),
            ):
                if given:
                    raise ConfigError(f"--trace and {other} are exclusive: the trace sets both "
                                      "the prompts and their times")  # fmt: skip

    def _check_conversations(self) -> None:
        if not self.turns:
            if self.max_context_tokens or self.history != "server":
                which = "--max-context-tokens" if self.max_context_tokens else "--history"
                raise ConfigError(f"{which} is for conversations: add --turns N")
            return
        if self.endpoint == "completions":
            raise ConfigError(
                f"--turns {self.turns_shown} needs --endpoint chat "
                "(a conversation is a list of chat messages), got --endpoint completions"
            )
        if not self.dataset and (self.turns_kept is None or self.history == "recorded"):
            which = "--turns all" if self.turns_kept is None else "--history recorded"
            raise ConfigError(f"{which} needs a conversation --dataset")
        if self.max_context_tokens and not self.tokenizer:
            raise ConfigError(
                f"--max-context-tokens {self.max_context_tokens} needs --tokenizer to count "
                "the history"
            )

    def seed_for(self, purpose: str, index: int = 0) -> int | None:
        """A seed of its own for each random stream (``purpose``) of each worker (``index``),
        all derived from --seed; None (a fresh draw) without --seed."""
        if self.seed is None:
            return None
        digest = hashlib.sha256(f"{self.seed}/{purpose}/{index}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    @property
    def mode(self) -> str:
        return "streaming" if self.stream else "non-streaming"

    @property
    def turns_kept(self) -> int | None:
        """The turns of each conversation: None for every one (``--turns all``), 0 without
        ``--turns`` (single requests)."""
        return None if self.turns == TURNS_ALL else self.turns

    @property
    def turns_shown(self) -> str:
        """``--turns`` as a user writes it: a number, or ``all``."""
        return "all" if self.turns == TURNS_ALL else str(self.turns)

    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers for every request; the key only here, never in anything printed.

        The endpoint says how the key goes (a bearer token, or Anthropic's x-api-key) and
        adds its API's fixed headers; a --header of the same name replaces one of those."""
        given = {name.lower() for name, _ in self.headers}
        auth = ENDPOINTS[self.endpoint].auth(self.api_key)
        return tuple(h for h in auth if h[0].lower() not in given) + self.headers
