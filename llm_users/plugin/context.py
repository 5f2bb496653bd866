"""The run context: everything a process needs to send requests, resolved once per test.

Built from Locust's parsed options (never written back into them): validated settings with
the preflight's model, the server's origin and TLS context, the tokenizer counter and the
prompt source. Slow things (tokenizer, dataset files) load here, before users start.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from gevent import ssl as gssl
from locust.runners import MasterRunner, WorkerRunner

from ..errors import ConfigError
from ..options.recorded import recorded_options
from ..options.settings import Settings
from ..role import Role
from ..servermetrics import probe
from ..wire.client import ClientConfig, LLMClient
from ..wire.endpoints import ENDPOINTS
from ..wire.http import Origin, make_ssl_context
from ..wire.kclock import KernelClock, kernel_supported
from ..wire.poller import Poller
from ..workload.conversation import ConversationSource, Dialogue
from ..workload.prompts import PromptSource, SeedPrompts
from ..workload.tokenizer import Counter, load_counter
from .preflight import preflight

__all__ = ["RunContext", "build_context", "role_of", "startup_key"]

log = logging.getLogger("llm_users")
_T = TypeVar("_T")
METRICS_PROBE_TIMEOUT_S = 2.0  # a given --server-metrics URL: one read, as --host gets


@dataclass(frozen=True)
class RunContext:
    settings: Settings
    origin: Origin
    role: Role
    ssl_context: gssl.SSLContext | None = None
    counter: Counter | None = None  # text -> tokens, with --tokenizer (not on the master)
    prompts: PromptSource | None = None
    prompts_key: tuple[Any, ...] = ()
    # numbers users, for their seeds
    users_made: Iterator[int] = field(default_factory=itertools.count)
    clock: KernelClock | None = None  # kernel receive timestamps (--timestamps), else None
    timestamps: str = "user"  # what times the reads: "kernel", "user" or "user (why)"
    poller: Poller | None = None  # reads every plain-TCP stream of this process
    options: dict[str, Any] = field(default_factory=dict)  # as given, for the summary (redacted)

    def user_rng(self, purpose: str) -> random.Random:
        """A new user's own random stream, repeatable with --seed (the n-th user made in this
        process, and the worker's index)."""
        n = next(self.users_made)
        return random.Random(self.settings.seed_for(f"{purpose}/user{n}", self.role.index))

    conversations: ConversationSource | None = None  # with --turns

    def new_dialogue(self) -> Dialogue | None:
        """A user's own conversation state (None: single requests)."""
        if self.conversations is None:
            return None
        s = self.settings
        return Dialogue(
            self.conversations,
            self.body,
            system_prompt=s.system_prompt,
            recorded=s.history == "recorded",
            max_context=s.max_context_tokens,
            counter=self.counter,
        )

    def new_client(self) -> LLMClient:
        s = self.settings
        cfg = ClientConfig(
            origin=self.origin,
            endpoint=ENDPOINTS[s.endpoint],
            headers=s.request_headers(),
            connect_timeout=s.connect_timeout,
            first_token_timeout=s.first_token_timeout,
            request_timeout=s.request_timeout,
            max_event_bytes=s.max_event_bytes,
            max_response_bytes=s.max_response_bytes,
            max_output_factor=s.max_output_factor,
            clock=self.clock,
            poller=self.poller,
            trace_context=s.trace_context,
            session_header=s.session_header,
            cancel_after_s=s.cancel_after_ms / 1000.0,
            cancel_from_first_token=s.cancel_from == "first-token",
        )
        return LLMClient(cfg, self.ssl_context)

    def body(self, prompt: Any, max_tokens: int | None) -> dict[str, Any]:
        s = self.settings
        return ENDPOINTS[s.endpoint].body(
            prompt,
            model=s.model,
            max_tokens=max_tokens if max_tokens is not None else s.max_tokens,
            stream=s.stream,
            stream_usage=s.stream_usage,
            system_prompt=s.system_prompt,
            extra=s.extra_body,
        )


def startup_key(opts: Any, environ: Any = None) -> str:
    """The API key of the command line, config or environment (the web form posts it empty)."""
    env = os.environ if environ is None else environ
    raw = getattr(opts, "api_key", "") if opts is not None else ""
    key = getattr(raw, "value", None) or str(raw or "")
    return (key or env.get("OPENAI_API_KEY", "")).strip()


def build_context(
    opts: Any,
    host: str | None,
    role: Role,
    *,
    api_key: str = "",
    model: str = "",
    check_server: bool = False,
    previous: RunContext | None = None,
) -> RunContext:
    """Validate the options and load what the hot path needs; raises ConfigError.

    ``api_key`` is the key the process got at start-up or from the master; ``model`` the
    model the master's preflight resolved. ``previous`` lends its prompt source and counter
    when the options that shape them did not change (a web UI run started again).
    """
    # The key is exactly ``api_key`` (or the options' own): the plugin pins it to an origin,
    # so no other fallback (the environment) may bring it back for another host.
    settings = Settings.from_options(opts, environ={}, master_key=api_key)
    if model and not settings.model:
        settings = dataclasses.replace(settings, model=model)
    host = host or (getattr(opts, "host", None) if opts is not None else None)
    if not host:
        raise ConfigError("no --host given (the server's base URL, e.g. http://127.0.0.1:8000)")
    origin = Origin.parse(host)
    ssl_context = None
    if origin.scheme == "https":
        ssl_context = make_ssl_context(settings.insecure, settings.ca_bundle or None)
        if settings.insecure:
            log.warning("llm-users: --insecure: TLS certificates are NOT verified")
    key = _prompts_key(settings, role)
    if previous is not None and previous.prompts_key == key:
        counter, prompts = previous.counter, previous.prompts
        conversations = previous.conversations
    else:
        counter, prompts, conversations = _off_loop_on_workers(role, lambda: _load(settings, role))
    clock, stamps = _clock(settings.timestamps, origin, role, previous)
    if check_server and settings.preflight and not role.is_worker:
        resolved = preflight(origin, settings, ssl_context)
        if resolved != settings.model:
            settings = dataclasses.replace(settings, model=resolved)
    if check_server and not role.is_worker and settings.server_metrics not in ("auto", "off"):
        # A URL the user gave is checked like --host: a typo fails now, not at the end.
        ok, why = probe(settings.server_metrics, timeout_s=METRICS_PROBE_TIMEOUT_S)
        if not ok:
            raise ConfigError(f"--server-metrics {settings.server_metrics!r} cannot be read: {why}")
    return RunContext(
        settings,
        origin,
        role,
        ssl_context,
        counter,
        prompts,
        prompts_key=key,
        conversations=conversations,
        clock=clock,
        timestamps=stamps,
        poller=_poller(origin, role, previous),
        options=recorded_options(opts) if opts is not None else {},
    )


def _load(
    s: Settings, role: Role
) -> tuple[Counter | None, PromptSource | None, ConversationSource | None]:
    # The tokenizer is local to each process that sends requests (not the master).
    counter = load_counter(s.tokenizer) if s.tokenizer and role.sends_requests else None
    return (counter, *_sources(s, role, counter))


def _off_loop_on_workers(role: Role, load: Callable[[], _T]) -> _T:
    """A worker loads in gevent's thread pool: its loop keeps sending heartbeats (a tokenizer
    or a trace can take longer than the master waits for one)."""
    if not role.is_worker:
        return load()
    import gevent

    return cast(_T, gevent.get_hub().threadpool.apply(load))


def _clock(
    choice: str, origin: Origin, role: Role, previous: RunContext | None
) -> tuple[KernelClock | None, str]:
    """The kernel clock --timestamps asks for (None: user-space stamps), and what it is."""
    if choice == "user" or not role.sends_requests:
        return None, "user"
    why = ""
    if not kernel_supported():
        why = "kernel receive timestamps need Linux"
    elif origin.scheme == "https":
        why = "TLS: an SSL socket gives no kernel receive timestamps"
    if why:
        if choice == "kernel":
            raise ConfigError(f"--timestamps kernel: {why} ({origin}); use auto or user")
        return None, f"user ({why})"
    if previous is not None and previous.clock is not None:
        return previous.clock, "kernel"
    return KernelClock(), "kernel"


def _poller(origin: Origin, role: Role, previous: RunContext | None) -> Poller | None:
    """The process's stream poller: plain TCP where epoll exists, in a process that sends."""
    if origin.scheme != "http" or not role.sends_requests or not Poller.available():
        return None
    if previous is not None and previous.poller is not None:
        return previous.poller
    return Poller()


def _prompts_key(s: Settings, role: Role) -> tuple[Any, ...]:
    return (
        s.dataset,
        s.dataset_format,
        s.dataset_order,
        s.dataset_output_len,
        s.input_tokens,
        s.input_tokens_spread,
        s.tokenizer,
        s.prompt_type,
        s.prompt_language,
        s.seed,
        s.prefix_tokens,
        s.prefix_count,
        s.prefix_in,
        s.endpoint,
        s.trace,
        s.trace_speed,
        s.trace_limit,
        s.trace_block_tokens,
        s.turns,
        role,
    )


def _sources(
    s: Settings, role: Role, counter: Counter | None
) -> tuple[PromptSource | None, ConversationSource | None]:
    """The prompt source, and with --turns the conversation source (a --dataset then holds
    conversations, not single prompts)."""
    if not s.turns:
        return _prompt_source(s, role, counter), None
    from ..workload.conversation import PromptConversations

    if not s.dataset:
        # --turns all needs a dataset (Settings checks it), so a number of turns is set here
        turns = s.turns_kept or 1
        return None, PromptConversations(_prompt_source(s, role, counter), turns)
    from ..workload.conversation_data import load_conversations

    index = role.index
    return None, load_conversations(
        s.dataset,
        fmt=None if s.dataset_format == "auto" else s.dataset_format,
        max_turns=s.turns_kept,
        order=s.dataset_order,
        seed=index if s.seed is None else s.seed_for("dataset", index),
        partition=_dataset_partition(s, role),
    )


def _dataset_partition(s: Settings, role: Role) -> tuple[int, int]:
    """Sequential: worker i of n sends rows i, i+n, ... (together: the file once per pass).
    Shuffle: every worker the whole file, in an order seeded by its index."""
    return role.partition if s.dataset_order == "sequential" else (0, 1)


def _prompt_source(s: Settings, role: Role, counter: Counter | None) -> PromptSource:
    """Loaded once per process, before users start (files and tokenizers are slow)."""
    index = role.index
    if (s.trace or s.prefix_tokens) and not role.is_master:  # the master sends nothing
        from ..workload.choose import workload_prompts

        return workload_prompts(s, role)
    if s.dataset:
        from ..workload.datasets import load_dataset

        return load_dataset(
            s.dataset,
            fmt=None if s.dataset_format == "auto" else s.dataset_format,
            use_output_len=s.dataset_output_len,
            counter=counter if s.dataset_output_len else None,
            order=s.dataset_order,
            seed=index if s.seed is None else s.seed_for("dataset", index),
            partition=_dataset_partition(s, role),
        )
    if s.input_tokens:
        if role.is_master:  # the master sends nothing; workers build their own
            return SeedPrompts(s.prompt_type, s.prompt_language)
        from ..workload.synthetic import SyntheticPrompts

        return SyntheticPrompts(
            s.input_tokens,
            s.input_tokens_spread,
            tokenizer_name=s.tokenizer,
            seed=s.seed_for("synthetic", index),
        )
    return SeedPrompts(
        s.prompt_type, s.prompt_language, rng=random.Random(s.seed_for("prompts", index))
    )


def role_of(runner: Any, workers: int = 1) -> Role:
    """The role of this process's Locust runner (``workers``: as the master said)."""
    if isinstance(runner, WorkerRunner):
        return Role("worker", int(getattr(runner, "worker_index", 0)), workers)
    return Role("master" if isinstance(runner, MasterRunner) else "local")
