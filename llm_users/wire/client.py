"""One request: send, read, timestamp every read -> a :class:`RequestRecord`.

The client knows nothing of Locust or of aggregation, nor of the endpoint's shapes (its
:class:`~llm_users.wire.endpoints.Endpoint` reads them). Every failure is classified into the
record by :func:`failure_of`; only ``BaseException``s such as ``GreenletExit`` (a user being
stopped) and programming errors propagate. Everything a server sends is bounded
(:class:`ClientConfig`), and a user never holds the event loop for long.
Where the kernel can stamp reads (:mod:`~llm_users.wire.kclock`), its stamps time them. The read
path reads better whole in one module.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from gevent import get_hub, getcurrent
from gevent import sleep as _gsleep
from gevent import ssl as gssl
from geventhttpclient.response import HTTPParseError

from ..record import FailureKind, RequestRecord
from .endpoints import BadShape, Endpoint, clip, error_message, error_text
from .fastevents import merge_usage
from .http import Connection, ConnectionLike, Origin, Oversized, ResponseHead
from .kclock import KernelClock
from .poller import PolledConnection, Poller
from .sse import SSEParser

__all__ = ["Cancelled", "ClientConfig", "LLMClient", "Oversized", "failure_of"]

_perf = time.perf_counter
_TURN = 1e-6  # seconds: a timer that is due at the loop's next turn
KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class ClientConfig:
    origin: Origin
    endpoint: Endpoint
    headers: tuple[tuple[str, str], ...] = ()  # extra headers, Authorization included
    connect_timeout: float = 10.0
    first_token_timeout: float = 120.0
    request_timeout: float = 600.0
    # Bounds on what a server may send; past one the request fails as oversized_response.
    # One SSE event (or unfinished line): a streamed event carries a few tokens, tens of
    # bytes; even one carrying a whole long answer or logprobs stays in the hundreds of KiB.
    # 8 MiB is far above any real reasoning model's single event, and bounds a broken line.
    max_event_bytes: int = 8 * MiB
    # A whole non-streamed body: a 32k-token answer is ~130 KiB of JSON, ~100 MiB only with
    # top-20 logprobs on every token; 64 MiB leaves room for long answers with usage and
    # some logprobs, while bounding each user's memory (raise it for logprobs-heavy runs).
    max_response_bytes: int = 64 * MiB
    max_error_bytes: int = 64 * KiB  # an error body is read this far, for its message
    max_headers: int = 100  # response header lines (1xx heads and trailers included)
    max_header_bytes: int = 64 * KiB  # the whole response head (1xx heads, trailers too)
    # A stream's bounds. Its body bytes: as max_response_bytes for a whole body. Its events:
    # max_output_factor x the request's max_tokens (+ OUTPUT_FLOOR_EVENTS); a server bound by
    # max_tokens sends at most one event per token, and a few without one (4x leaves room
    # for servers that send empty deltas or split a character's bytes over events); without
    # max_tokens, max_stream_events (about the longest context window of any model, 1M).
    # Each event kept costs ~100 bytes (its text and time): these bound a user's memory.
    max_output_factor: float = 4.0  # 0: no bound from max_tokens
    max_stream_events: int = 1 << 20
    # Fair reading: a user whose socket always has data yields to the other greenlets
    # after this much continuous work (one clock read per socket read, never per event).
    max_busy_s: float = 0.002
    # Kernel receive timestamps (plain TCP on Linux): every read is stamped with the time
    # its newest segment arrived, converted by this clock; None: user-space stamps only.
    clock: KernelClock | None = None
    # Reads every plain-TCP stream of the process from one greenlet (None: each user reads
    # its own socket, as over TLS).
    poller: Poller | None = None
    # A W3C traceparent header on every request, its ids new per request (--trace-context).
    trace_context: bool = False
    # The header that carries a request's session id, when one is given (--session-header).
    session_header: str = ""
    # --cancel-after: a request asked to be cancelled is hung up on this long after it was
    # sent, or after its first token (cancel_from_first_token).
    cancel_after_s: float = 0.0
    cancel_from_first_token: bool = False


class Cancelled(BaseException):
    """Thrown into a user's greenlet when its request's cancel timer fires (--cancel-after).

    A BaseException, as gevent's Timeout: no ``except Exception`` on the read path takes it
    for a failure of the server; the request's own handler turns it into a cancelled record.
    """


class ConnectionCut(Exception):
    """The peer closed the connection before the end of the response (not a framing error)."""


# After [DONE], the body's end (the last chunk, or the connection's close) is read for this
# long at most, then the connection is closed and the request counted. Servers send it in
# the same write as [DONE] or within a millisecond; a longer wait would only let a body held
# open hold the user (as long as its whole request timeout), and more than a loop's turn
# under load (a few ms to tens of ms) is needed not to close a healthy connection.
DRAIN_GRACE_S = 0.1
# The cancel timer's place-holder until the first token arms it (--cancel-from first-token).
_ARM_ON_FIRST_TOKEN = object()
# Events a stream may carry past factor x max_tokens: the role, usage, finish and keep-alive
# events that carry no token.
OUTPUT_FLOOR_EVENTS = 64


Factory = Callable[[Origin, "gssl.SSLContext | None", float], ConnectionLike]


class LLMClient:
    """Sends requests one at a time over one keep-alive connection (one per Locust user).

    ``connection`` (an object with :class:`~llm_users.wire.http.ConnectionLike`'s methods) or
    ``connection_factory(origin, ssl_context, connect_timeout)`` is the seam for fakes.
    """

    def __init__(
        self,
        config: ClientConfig,
        ssl_context: gssl.SSLContext | None = None,
        *,
        connection: ConnectionLike | None = None,
        connection_factory: Factory = Connection,
    ) -> None:
        self.config = config
        self.conn: ConnectionLike = (
            connection
            if connection is not None
            else connection_factory(config.origin, ssl_context, config.connect_timeout)
        )
        if config.clock is not None:
            self.conn.kernel_stamps = config.origin.scheme == "http"  # TLS: no recvmsg
        self._clock = config.clock
        self._kernel = False  # this request is timed with kernel stamps
        self._user_head = self._user_end = 0.0  # its user-space stamps, for a fallback
        self._user_times: list[float] = []
        o = config.origin
        self._path = (o.prefix + config.endpoint.path).encode()
        head = [f"Host: {o.host_header}", "User-Agent: llm-users", "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in config.headers]
        self._head = ("\r\n".join(head) + "\r\n").encode("latin-1")
        self._session_head = f"{config.session_header}: ".encode("latin-1")
        self._first_span = min(config.first_token_timeout, config.request_timeout)
        self._received: int | None = None  # bytes of the response head; None: not reading
        self._loop_now: Callable[[], float] = get_hub().loop.now
        self._slice_loop = 0.0  # the event loop's time when this user's busy slice began
        self._slice_start = 0.0
        self._cancel: Any = None  # the running request's cancel timer (a loop timer), if any
        self._greenlet: Any = None  # the user sending it: where the timer throws

    def close(self) -> None:
        self.conn.close()

    def _request_bytes(self, body: bytes, stream: bool, more: bytes = b"") -> bytes:
        accept = b"Accept: text/event-stream\r\n" if stream else b"Accept: application/json\r\n"
        return b"".join(
            (
                b"POST ",
                self._path,
                b" HTTP/1.1\r\n",
                self._head,
                more,
                accept,
                b"Content-Length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )

    def request(
        self,
        body: dict[str, Any],
        *,
        intended_start: float | None = None,
        session: str | None = None,
        cancel: bool = False,
    ) -> RequestRecord:
        """Send one request and read the whole answer; never raises for a failed request.
        ``session``: the session id sent in the config's ``session_header``; ``cancel``: hang
        up ``cancel_after_s`` after sending it (or after its first token) unless it is over."""
        stream = bool(body.get("stream"))
        if cancel:
            self._greenlet = getcurrent()  # the cancel timer's target: this user
        max_tokens = body.get(self.config.endpoint.max_tokens_key)
        conn = self.conn
        rec = RequestRecord(
            endpoint=self.config.endpoint.name,
            stream=stream,
            start=0.0,
            start_wall=time.time(),
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            intended_start=intended_start,
        )
        payload = self._request_bytes(orjson.dumps(body), stream, self._per_request(rec, session))
        self._received = None
        if conn.connected and conn.closed_while_idle():
            # The server closed (or reset) the idle keep-alive connection: it never saw
            # this request, so a fresh connection is not a retry.
            conn.close()
        retry = True
        while True:
            reused = conn.connected
            try:
                self._send_and_read(rec, payload, stream, cancel)
            except Cancelled:
                conn.close()  # the hang-up itself: the server sees the connection close
                self._disarm()
                if rec.end is None and rec.failure is None:  # neither over nor failed before
                    rec.cancelled = True
                    rec.end = _perf()
                break
            except BaseException as exc:
                conn.close()  # never leave anything half-read on the socket
                self._disarm()
                if retry and reused and _unanswered(exc, rec, self._received):
                    # A reused connection the server closed before answering at all (a
                    # keep-alive race, or a server that closes after every response while
                    # its headers say keep-alive, as llama.cpp's does): sent again, once,
                    # on a fresh connection, and counted as a retry (rec.retries).
                    retry = False
                    rec.retries += 1
                    rec.start = 0.0
                    self._received = None
                    continue
                failure = failure_of(exc, rec, self.config, self._received)
                if failure is None:
                    raise  # a stopped user (GreenletExit) or a bug: not the server's doing
                rec.fail(*failure)
            break
        self._disarm()
        if rec.start == 0.0:
            rec.start = _perf()
        if rec.failure is not None and rec.end is None:
            rec.end = _perf()
        return rec

    def _send_and_read(
        self, rec: RequestRecord, payload: bytes, stream: bool, cancel: bool = False
    ) -> None:
        conn = self.conn
        if not conn.connected:
            conn.connect()
        clock = self._clock
        self._kernel = kernel = clock is not None and conn.stamped
        epoch = clock.epoch if clock is not None else 0
        if kernel:
            rec.timestamps = "kernel"
            self._user_times = []
            conn.recv_real = None
        rec.start = _perf()  # just before the request is written (see metrics)
        rec.start_wall = time.time()  # its label, taken after connecting like `start`
        if cancel:
            if self.config.cancel_from_first_token:
                self._cancel = _ARM_ON_FIRST_TOKEN  # the stream reader arms it (_StreamReader)
            else:
                self._arm(rec.start + self.config.cancel_after_s)
        conn.send(payload)
        rec.sent_at = _perf()  # the last byte handed to the kernel: the send's own delay
        self._read(rec, stream)
        if kernel and clock is not None and clock.epoch != epoch:
            self._to_user_stamps(rec)  # the clock stepped: never mix two offsets

    # -- cancellation (--cancel-rate) ------------------------------------------------------
    def _arm(self, at: float) -> None:
        """Hang up at ``at`` (perf_counter): one loop timer that throws :class:`Cancelled`
        into this user's greenlet, wherever it waits (its own read, the poller's follow, a
        send); nothing runs per token. Called from the user, or from the poller's greenlet
        at the first token: the timer always targets the user that sent the request."""
        self._disarm()
        timer = get_hub().loop.timer(max(0.0, at - _perf()))
        timer.start(self._greenlet.throw, Cancelled(), update=True)
        self._cancel = timer

    def arm_at_first_token(self, first_token_at: float) -> None:
        """The stream reader saw the request's first token (``--cancel-from first-token``)."""
        if self._cancel is _ARM_ON_FIRST_TOKEN:
            self._arm(first_token_at + self.config.cancel_after_s)

    def _disarm(self) -> None:
        timer, self._cancel = self._cancel, None
        if timer is not None and timer is not _ARM_ON_FIRST_TOKEN:
            timer.stop()
            timer.close()

    def _per_request(self, rec: RequestRecord, session: str | None) -> bytes:
        """This request's own header lines: a traceparent with new ids (version 00, sampled),
        the session id; each id also goes into the record, to join it to the server's logs."""
        more = b""
        if self.config.trace_context:
            # One read of the OS generator: never repeated across forked processes (a
            # user-space generator's state would be), ~1 us per request.
            ids = os.urandom(24).hex()
            rec.trace_id, rec.span_id = ids[:32], ids[32:]
            if rec.trace_id.strip("0") and rec.span_id.strip("0"):  # all-zero ids are invalid
                more = b"traceparent: 00-%s-%s-01\r\n" % (ids[:32].encode(), ids[32:].encode())
            else:
                rec.trace_id = rec.span_id = None
        if session and self.config.session_header:
            rec.session_id = session
            more += self._session_head + session.encode("latin-1") + b"\r\n"
        return more

    def _to_user_stamps(self, rec: RequestRecord) -> None:
        """Time ``rec`` with the user-space stamps taken beside the kernel ones."""
        user = self._user_times
        if rec.first_content_at is not None:
            rec.first_content_at = user[rec.token_times.index(rec.first_content_at)]
        rec.token_times[:] = user
        if rec.headers_at is not None:
            rec.headers_at = self._user_head
        if rec.end is not None:
            rec.end = self._user_end
        rec.timestamps = "user"
        rec.clock_step = True
        rec.before_first = None  # a kernel-clock time: no bound on the user-space stamps

    def _now(self, rec: RequestRecord) -> float:
        """The time of the last read: the kernel's stamp of it, where there is one."""
        return self._read_time(self.conn.recv_real, _perf(), rec.start)

    def _read_time(self, real: float | None, now: float, start: float) -> float:
        """A read's time: the kernel's stamp ``real`` of it on the perf_counter clock, when
        this request is kernel-timed and has one; else ``now`` (the clock after the read)."""
        if self._kernel:
            self._user_end = now
            if real is not None:
                assert self._clock is not None
                return self._clock.to_perf(real, now, start)
        return now

    # -- reading -------------------------------------------------------------------------
    def _recv(self, rec: RequestRecord) -> bytes:
        """One read, within the current deadline; yields first if this user ran too long."""
        cfg = self.config
        now = _perf()
        if now - self._slice_start > cfg.max_busy_s:
            loop_now = self._loop_now()
            if loop_now == self._slice_loop:  # the loop has not turned: this user kept it
                # Data keeps coming: let the loop run its timers and I/O (the other users'
                # reads). Not sleep(0): it only runs queued callbacks, so a user alone in
                # the queue is resumed at once, the loop never polled; not idle(): any
                # greenlet looping on sleep(0) would starve it. A timer this short costs
                # exactly one turn of the loop.
                _gsleep(_TURN)
                loop_now = self._loop_now()
                now = _perf()
            self._slice_loop, self._slice_start = loop_now, now
        # The deadline (as _deadline says, inline: this runs once per read).
        if rec.token_times or not rec.stream:
            deadline = rec.start + cfg.request_timeout
        else:
            deadline = rec.start + self._first_span
        remaining = deadline - now
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        return self.conn.recv(remaining)

    def _read(self, rec: RequestRecord, stream: bool) -> None:
        cfg = self.config
        resp = ResponseHead("POST", cfg.max_headers, cfg.max_header_bytes)
        conn = self.conn
        self._received = head_bytes = 0
        # Until a final head: 1xx interim heads (100 Continue, 103 Early Hints) are skipped,
        # never taken for the answer; the head bounds count them all.
        while not resp.headers_complete or resp.interim:
            data = self._recv(rec)
            if not data:
                if head_bytes == 0:
                    raise EOFError("connection closed before any response")
                raise ConnectionCut("connection closed before the end of the response headers")
            head_bytes += len(data)
            self._received = head_bytes
            resp.feed(data)
            if not resp.headers_complete and head_bytes > cfg.max_header_bytes:
                limit = cfg.max_header_bytes
                raise Oversized(f"response headers over {limit} bytes ({head_bytes} received)")
        rec.headers_at = self._now(rec)
        self._user_head = self._user_end
        rec.status = resp.status_code
        ctype = str(resp.get("content-type") or "")
        if rec.status != 200:
            self._read_error(rec, resp)
        elif stream and "json" not in ctype:
            self._read_stream(rec, resp)
        else:
            self._read_full(rec, resp, stream)
        if not resp.message_complete or not resp.should_keep_alive():
            conn.close()

    def _read_stream(self, rec: RequestRecord, resp: ResponseHead) -> None:
        """The body of a stream: every read stamped, events handled as soon as complete.

        Plain TCP is read by the process's :class:`~llm_users.wire.poller.Poller` (this user
        sleeps meanwhile); anything else (TLS, fakes) by this user's own reads.
        """
        st = _StreamReader(self, rec, resp)
        if not st.body(resp.take_body(), rec.headers_at or _perf()):
            conn = self.conn
            poller = self.config.poller
            if poller is not None and conn.pollable:
                cfg = self.config
                polled = cast(PolledConnection, conn)  # pollable: it is one
                poller.follow(polled, st, lambda: _deadline(rec, cfg)[0])
            else:
                read, recv = st.read, self._recv
                while not read(recv(rec), conn.recv_real, _perf()):
                    pass
        if st.failed:
            self.conn.close()
        elif st.done:
            self._drain(rec, resp)

    def _drain(self, rec: RequestRecord, resp: ResponseHead) -> None:
        """After the end event: read to the end of the body so the connection can be
        reused, for DRAIN_GRACE_S and max_error_bytes at most; past them, or on anything
        wrong, the connection is closed: the request is complete either way."""
        conn = self.conn
        until = _perf() + DRAIN_GRACE_S
        left = self.config.max_error_bytes
        try:
            while not resp.message_complete:
                remaining = until - _perf()
                if remaining <= 0 or left < 0:
                    conn.close()
                    break
                data = conn.recv(remaining)
                if not data:
                    conn.close()
                    break
                left -= len(data)
                resp.feed(data)
                resp.take_body()
        except Exception:
            conn.close()  # the request is complete; only the connection is lost
        if rec.end is not None and not rec.token_times:
            rec.fail(FailureKind.NO_TOKENS, "stream finished without any generated text")

    def _read_body(self, rec: RequestRecord, resp: ResponseHead, limit: int) -> list[bytes]:
        """The body's pieces; reading stops (and the connection is closed) past ``limit``."""
        parts = [resp.take_body()]
        size = len(parts[0])
        while not resp.message_complete:
            if size > limit:
                self.conn.close()
                break
            data = self._recv(rec)
            _feed(resp, data)
            part = resp.take_body()
            size += len(part)
            parts.append(part)
        rec.end = self._now(rec)
        return parts

    def _read_full(self, rec: RequestRecord, resp: ResponseHead, stream: bool) -> None:
        limit = self.config.max_response_bytes
        parts = self._read_body(rec, resp, limit)
        size = sum(map(len, parts))
        if size > limit:
            raise Oversized(f"response body over {limit} bytes ({size} received)")
        body = b"".join(parts)
        del parts
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            rec.fail(FailureKind.BAD_RESPONSE, f"response is not JSON: {clip(body)}")
            return
        err = error_message(obj)
        if err is not None:
            rec.fail(FailureKind.ERROR_EVENT, err)
            return
        if not isinstance(obj, dict):
            rec.fail(FailureKind.BAD_RESPONSE, f"no choices in the response: {clip(body)}")
            return
        try:
            full = self.config.endpoint.on_full(obj)
        except BadShape as exc:
            rec.fail(FailureKind.BAD_RESPONSE, f"{exc}: {clip(body)}")
            return
        if stream:
            rec.fail(FailureKind.BAD_RESPONSE, "asked for a stream, got a single JSON response")
            return
        rec.texts.append(full.text)
        rec.usage = full.usage
        rec.server_timing = full.server_timing
        rec.finish_reason = full.finish_reason
        rec.items = full.items

    def _read_error(self, rec: RequestRecord, resp: ResponseHead) -> None:
        kind = FailureKind.http(rec.status)
        try:
            body = b"".join(self._read_body(rec, resp, self.config.max_error_bytes))
        except (OSError, HTTPParseError, ConnectionCut, Oversized):
            body = b""
            self.conn.close()
        rec.fail(kind, f"HTTP {rec.status}: {error_text(body)}")


class _StreamReader:
    """One streamed body being read: a read's bytes and times in, the record filled.

    Used by the user's own read loop and by the poller alike: one code path for every
    stream shape. ``read`` returns True once the stream is over: ``done`` ([DONE] came;
    the body's end may still be due), ``failed`` (an error event or a malformed one; the
    connection must close), or the body ended (the record says whether it was complete).
    Malformed framing and oversized events raise, for :func:`failure_of`.
    """

    __slots__ = (
        "client", "rec", "resp", "parser", "on_event", "on_batch", "max_event", "finished_at",
        "kernel", "user_times", "done", "failed", "received", "max_bytes", "max_events", "prev",
        "arm_first",
    )  # fmt: skip

    def __init__(self, client: LLMClient, rec: RequestRecord, resp: ResponseHead) -> None:
        self.client = client
        self.rec = rec
        self.resp = resp
        self.parser = SSEParser()
        self.on_event = client.config.endpoint.on_event
        self.on_batch = client.config.endpoint.on_batch
        cfg = client.config
        self.max_event = cfg.max_event_bytes
        self.received = 0  # bytes read since the head
        self.max_bytes = cfg.max_response_bytes
        limit = cfg.max_stream_events
        if rec.max_tokens and cfg.max_output_factor > 0:
            by_tokens = int(cfg.max_output_factor * rec.max_tokens) + OUTPUT_FLOOR_EVENTS
            limit = min(limit, by_tokens)
        self.max_events = limit
        self.finished_at: float | None = None
        self.kernel = client._kernel
        self.user_times = client._user_times
        self.done = self.failed = False
        self.prev = rec.start  # the previous read's time (the request's write, at first)
        # --cancel-from first-token: the client's timer, armed once the first token is here
        # (checked once per read that brought events, never per token).
        self.arm_first = (
            client.arm_at_first_token if client._cancel is _ARM_ON_FIRST_TOKEN else None
        )

    def read(self, raw: bytes, real: float | None, now: float) -> bool:
        """One read's bytes (b"": the peer closed); ``now`` the clock just after it."""
        now = self.client._read_time(real, now, self.rec.start)
        resp = self.resp
        if raw:
            resp.feed(raw)  # trailers past their bounds raise Oversized here
            self.received += len(raw)
            if self.received > self.max_bytes:
                raise Oversized(f"stream over {self.max_bytes} bytes")
        else:
            _feed(resp, raw)  # the peer closed: complete if the body needs no more
        return self.body(resp.take_body(), now)

    def body(self, data: bytes, now: float) -> bool:
        """Body bytes that arrived at ``now``; True once the stream is over."""
        rec = self.rec
        if not rec.token_times:  # until the first token: two steps a read, none after
            rec.before_first = self.prev
            self.prev = now
        if data:
            payloads, parsed = self.parser.feed_batch(data)
            events: Sequence[tuple[bytes, bytes]] = parsed
            if payloads:
                if len(payloads) > 1 and self.on_batch is not None:
                    taken = self._run(payloads, now)
                    if taken:
                        payloads = payloads[taken:]
                if len(payloads) == 1:
                    events = [(payloads[0], b"")]
                elif payloads:
                    events = [(raw, b"") for raw in payloads]
            token_times, texts = rec.token_times, rec.texts
            on_event = self.on_event
            for raw, kind in events:  # (unpacked: this runs once per event)
                rec.events += 1
                try:
                    text, content, finish, usage, done, error, timing = on_event(raw, kind)
                except BadShape as exc:
                    rec.fail(FailureKind.BAD_EVENT, str(exc))
                    self.failed = True
                    return True
                if error is not None:
                    rec.fail(FailureKind.ERROR_EVENT, error)
                    self.failed = True
                    return True
                if text:
                    token_times.append(now)
                    if self.kernel:
                        self.user_times.append(self.client._user_end)
                    texts.append(text)
                    if content and rec.first_content_at is None:
                        rec.first_content_at = now
                if finish:
                    rec.finish_reason = finish
                    self.finished_at = now
                if usage:  # merged: an API may split usage over events (Messages)
                    rec.usage = merge_usage(rec.usage, usage)
                if timing:
                    rec.server_timing = timing
                if done:
                    rec.end = now
                    self.done = True
                    return True
            if self.arm_first is not None and token_times:
                self.arm_first(token_times[0])
                self.arm_first = None
            held = self.parser.held
            if held > self.max_event:
                raise Oversized(f"SSE event over {self.max_event} bytes ({held} held)")
            if rec.events > self.max_events:  # (once per read: the events are counted)
                raise Oversized(self._too_many())
        if not self.resp.message_complete:
            return False
        # The body ended cleanly without [DONE]: complete only if a finish_reason came.
        if self.finished_at is None:
            what = "no [DONE] and no finish_reason" if rec.token_times else "no tokens"
            rec.fail(FailureKind.TRUNCATED, f"stream ended with {what} after {rec.events} events")
            return True
        rec.end = now
        if not rec.token_times:
            rec.fail(FailureKind.NO_TOKENS, "stream finished without any generated text")
        return True

    def _too_many(self) -> str:
        rec, cfg = self.rec, self.client.config
        if self.max_events < cfg.max_stream_events:
            factor = cfg.max_output_factor
            return (
                f"stream over {self.max_events} events ({factor:g} x max_tokens "
                f"{rec.max_tokens} + {OUTPUT_FLOOR_EVENTS}; --max-output-factor)"
            )
        return f"stream over {self.max_events} events"

    def _run(self, payloads: list[bytes], now: float) -> int:
        """A read's run of plain data events in one call of the endpoint's batch handler,
        applied as the per-event loop of :meth:`body` would apply them; returns how many it
        took from the first (the rest go to that loop, one by one)."""
        assert self.on_batch is not None
        rec = self.rec
        run = self.on_batch(payloads)
        rec.events += run.taken
        texts = run.texts
        if texts:
            rec.token_times += [now] * len(texts)
            if self.kernel:
                self.user_times += [self.client._user_end] * len(texts)
            rec.texts += texts
            if run.content and rec.first_content_at is None:
                rec.first_content_at = now
        if run.finish_reason:
            rec.finish_reason = run.finish_reason
            self.finished_at = now
        if run.usage:
            rec.usage = merge_usage(rec.usage, run.usage)
        return run.taken


def _feed(resp: ResponseHead, data: bytes) -> None:
    """``resp.feed``, where b"" (the peer closed) before the body's end is a cut connection,
    not a framing error."""
    if data:
        resp.feed(data)
        return
    try:
        resp.feed(data)  # completes a body delimited by the connection's close
    except HTTPParseError:
        raise ConnectionCut("connection closed before the end of the body") from None


def _unanswered(exc: BaseException, rec: RequestRecord, received: int | None) -> bool:
    """The request was written (or being written) on a connection the server had closed:
    it ended before a single byte of an answer (so the server never answered it)."""
    if rec.start == 0.0 or rec.status or received:
        return False
    if isinstance(exc, EOFError):
        return True
    return isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError))


def _deadline(rec: RequestRecord, cfg: ClientConfig) -> tuple[float, FailureKind]:
    """When the current read must end, and the timeout it is if it does not."""
    total = rec.start + cfg.request_timeout
    if rec.token_times or not rec.stream:
        return total, FailureKind.REQUEST_TIMEOUT
    first = rec.start + cfg.first_token_timeout
    if first < total:
        return first, FailureKind.FIRST_TOKEN_TIMEOUT
    return total, FailureKind.REQUEST_TIMEOUT


def failure_of(
    exc: BaseException, rec: RequestRecord, cfg: ClientConfig, received: int | None
) -> tuple[str, str] | None:
    """The failure (kind, message) an exception means, given the request's state.

    ``rec.start == 0`` means the request was not written yet (connecting); ``received`` is
    the count of response bytes read (None before reading began); ``rec.status`` is set
    once the response head was read. None: not a request failure (re-raise it).
    """
    after_head = bool(rec.status)
    cut = FailureKind.DROPPED if after_head else FailureKind.RESET
    if isinstance(exc, Oversized):
        return FailureKind.OVERSIZED, str(exc)
    if isinstance(exc, TimeoutError):
        if rec.start == 0.0:
            return FailureKind.CONNECT, f"connect timeout after {cfg.connect_timeout:g} s"
        _, kind = _deadline(rec, cfg)
        if kind == FailureKind.FIRST_TOKEN_TIMEOUT:
            return kind, f"no first token within {cfg.first_token_timeout:g} s"
        return kind, f"request not complete within {cfg.request_timeout:g} s"
    if isinstance(exc, EOFError):
        return FailureKind.RESET, str(exc)
    if isinstance(exc, ConnectionCut):
        return cut, f"connection closed mid-response: {exc}"
    if isinstance(exc, HTTPParseError):  # llhttp's: bad chunk sizes, status lines, ...
        reason = exc.args[0] if exc.args else exc
        return FailureKind.FRAMING, f"malformed HTTP from the server: {reason}"
    if isinstance(exc, OSError):
        if rec.start == 0.0:
            reason = exc.strerror or str(exc) or type(exc).__name__
            return FailureKind.CONNECT, f"cannot connect to {cfg.origin}: {reason}"
        if isinstance(exc, ConnectionResetError) and received == 0:
            return FailureKind.RESET, "connection reset before any response"
        resets = (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED)
        if exc.errno in resets or isinstance(exc, ConnectionError):
            return cut, f"connection reset ({exc.strerror or exc})"
        return cut, f"socket error: {exc}"
    if isinstance(exc, RecursionError):
        # JSON nested deeper than a decoder goes (msgspec, json, or str() of what orjson
        # built): what the server sent, never a bug of ours. The request fails, counted.
        kind = FailureKind.BAD_EVENT if after_head and rec.stream else FailureKind.BAD_RESPONSE
        return kind, "JSON nested too deep to read"
    return None
