"""What the client observed for one request: timestamps and raw facts, no derived figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["FailureKind", "RequestRecord"]


class FailureKind(str, Enum):
    """Names of the failure classes; each is counted on its own, never mixed with latency.

    A ``str`` enum: members compare and serialise as their plain string values (what the
    records, summaries and reports have always carried). HTTP statuses are
    :meth:`FailureKind.http`.
    """

    CONNECT = "connect_error"  # refused, unreachable, DNS, TLS handshake
    RESET = "connection_reset"  # reset or closed before any response
    DROPPED = "connection_dropped"  # the connection ended mid-body
    TRUNCATED = "truncated_stream"  # body ended cleanly but without [DONE] / finish_reason
    ERROR_EVENT = "error_event"  # {"error": ...} inside a 200 stream
    BAD_EVENT = "malformed_event"  # a data: line that is not JSON, or not a chunk
    BAD_RESPONSE = "malformed_response"  # a non-streamed body that is not the expected JSON
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"
    REQUEST_TIMEOUT = "request_timeout"
    NO_TOKENS = "no_tokens"  # a complete stream that carried no generated text
    OVERSIZED = "oversized_response"  # an event, body, stream or header block past its bound
    FRAMING = "malformed_http"  # HTTP framing the parser refuses (chunk sizes, status line)

    def __str__(self) -> str:  # the value, as 3.11's StrEnum does (3.10 has no StrEnum)
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(self, spec)

    @staticmethod
    def http(status: int) -> str:
        """The kind of an HTTP error status: ``http(429) == "http_429"``."""
        return f"http_{status}"


@dataclass(slots=True)
class RequestRecord:
    """Times are ``time.perf_counter()`` seconds; ``start_wall`` is for labels only."""

    endpoint: str
    stream: bool
    start: float
    start_wall: float
    max_tokens: int | None = None
    status: int = 0
    headers_at: float | None = None
    # perf_counter of every event that carried generated text (reasoning or content);
    # events that arrived in the same read share that read's timestamp.
    token_times: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # the text of each of those events
    first_content_at: float | None = None
    end: float | None = None
    usage: dict[str, Any] | None = None
    server_timing: dict[str, float] | None = None  # the server's own timing (vLLM ``metrics``)
    finish_reason: str | None = None
    failure: str | None = None
    message: str | None = None
    events: int = 0  # every data event received, token-carrying or not
    # Sent again (once) on a fresh connection: the reused one was closed before any answer.
    retries: int = 0
    # The time of the read before the one that carried the first token (a stream's). When
    # that read also carried later token events, the first token's segment may have come
    # in earlier than the read's stamp (the kernel stamps a read with its newest segment),
    # but not before this: the gap bounds how late the first token's stamp can be.
    before_first: float | None = None
    sent_at: float | None = None  # perf_counter when the request's last byte was handed over
    intended_start: float | None = None  # open-loop runs: when the request was due
    # Set by the user, decided when the request started (the client leaves them alone):
    warmup: bool = False  # started in the warm-up: kept out of every figure
    turn: int | None = None  # conversations: 1 for a conversation's first request
    truncated: bool = False  # conversations: oldest turns left out (--max-context-tokens)
    conversation_done: bool = False  # conversations: the last turn of a completed one
    # "kernel": the reads' times are the kernel's arrival stamps; "user": perf_counter
    # after each read returned. clock_step: the wall clock stepped while it ran (it is
    # then timed with its user-space stamps).
    timestamps: str = "user"
    clock_step: bool = False
    # The W3C trace context sent with it (hex ids; None: --trace-context off), and the session
    # id sent in --session-header: what joins it to the server's spans and logs.
    trace_id: str | None = None
    span_id: str | None = None
    session_id: str | None = None
    # --cancel-rate: the client hung up on purpose (--cancel-after): neither a success nor a
    # failure, in no latency figure; ``end`` is when it closed the connection.
    cancelled: bool = False
    items: int | None = None  # embeddings: the vectors returned; rerank: the documents scored

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.cancelled

    @property
    def first_token_at(self) -> float | None:
        return self.token_times[0] if self.token_times else None

    def fail(self, kind: str, message: str) -> RequestRecord:
        if self.failure is None:  # the first cause is the one that counts
            self.failure = str(kind)  # a plain string in records and summaries
            self.message = message
        return self
