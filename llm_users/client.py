"""One request: send, read, timestamp every read -> a :class:`RequestRecord`.

The client knows nothing of Locust or of aggregation. Every failure is caught and
classified into the record (see :class:`~llm_users.record.FailureKind`); only
``BaseException``s such as ``GreenletExit`` (a user being stopped) propagate.
"""

from __future__ import annotations

import errno
import select
import time
from dataclasses import dataclass
from typing import Any

import orjson
from gevent import monkey
from geventhttpclient.response import HTTPParseError

from .http import Connection, Origin, ResponseHead
from .protocol import Endpoint, error_message, error_text
from .record import FailureKind, RequestRecord
from .sse import SSEParser

__all__ = ["ClientConfig", "LLMClient"]

_perf = time.perf_counter
_MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True)
class ClientConfig:
    origin: Origin
    endpoint: Endpoint
    headers: tuple[tuple[str, str], ...] = ()  # extra headers, Authorization included
    connect_timeout: float = 10.0
    first_token_timeout: float = 120.0
    request_timeout: float = 600.0


class _Timeout(Exception):
    pass


class _Stale(HTTPParseError):
    """The connection closed before a single byte of the response."""


class LLMClient:
    """Sends requests one at a time over one keep-alive connection (one per Locust user)."""

    def __init__(self, config: ClientConfig, ssl_context: Any = None) -> None:
        self.config = config
        self.conn = Connection(config.origin, ssl_context, config.connect_timeout)
        o = config.origin
        self._path = (o.prefix + config.endpoint.path).encode()
        head = [f"Host: {o.host_header}", "User-Agent: llm-users", "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in config.headers]
        self._head = ("\r\n".join(head) + "\r\n").encode("latin-1")

    def close(self) -> None:
        self.conn.close()

    def _request_bytes(self, body: bytes, stream: bool) -> bytes:
        accept = b"Accept: text/event-stream\r\n" if stream else b"Accept: application/json\r\n"
        return b"".join(
            (
                b"POST ",
                self._path,
                b" HTTP/1.1\r\n",
                self._head,
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
    ) -> RequestRecord:
        """Send one request and read the whole answer; never raises for a failed request."""
        stream = bool(body.get("stream"))
        payload = self._request_bytes(orjson.dumps(body), stream)
        max_tokens = body.get("max_tokens")
        conn = self.conn
        rec = RequestRecord(
            endpoint=self.config.endpoint.name,
            stream=stream,
            start=0.0,
            start_wall=time.time(),
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            intended_start=intended_start,
        )
        try:
            if conn.connected and _closed_while_idle(conn):
                # The server closed (or reset) the idle keep-alive connection: it never saw
                # this request, so a fresh connection is not a retry. Once a request is
                # written, nothing is ever re-sent: every failure counts.
                conn.close()
            if not conn.connected:
                conn.connect()
            rec.start = _perf()  # just before the request is written (see metrics)
            rec.start_wall = time.time()  # its label, taken after connecting like `start`
            conn.send(payload)
            self._read(rec, stream)
        except _Timeout as exc:
            conn.close()
            rec.fail(str(exc), _timeout_message(str(exc), self.config))
        except TimeoutError:
            conn.close()
            if rec.start == 0.0:
                limit = self.config.connect_timeout
                rec.fail(FailureKind.CONNECT, f"connect timeout after {limit:g} s")
            else:
                rec.fail(FailureKind.REQUEST_TIMEOUT, "timed out")
        except _Stale as exc:
            conn.close()
            rec.fail(FailureKind.RESET, str(exc))
        except HTTPParseError as exc:
            conn.close()
            kind = FailureKind.DROPPED if rec.status else FailureKind.RESET
            rec.fail(kind, f"connection closed mid-response: {exc}")
        except OSError as exc:
            conn.close()
            rec.fail(*_classify_oserror(exc, rec, str(self.config.origin)))
        except BaseException:
            conn.close()  # a stopped user: leave nothing half-read on the socket
            raise
        if rec.start == 0.0:
            rec.start = _perf()
        if rec.failure is not None and rec.end is None:
            rec.end = _perf()
        return rec

    # -- reading -------------------------------------------------------------------------
    def _recv(self, rec: RequestRecord, resp: ResponseHead) -> bytes:
        cfg = self.config
        now = _perf()
        if rec.token_times:
            deadline, kind = rec.start + cfg.request_timeout, FailureKind.REQUEST_TIMEOUT
        else:
            first = rec.start + cfg.first_token_timeout
            total = rec.start + cfg.request_timeout
            deadline, kind = (
                (first, FailureKind.FIRST_TOKEN_TIMEOUT)
                if first < total
                else (total, FailureKind.REQUEST_TIMEOUT)
            )
            if not rec.stream:
                deadline, kind = total, FailureKind.REQUEST_TIMEOUT
        remaining = deadline - now
        if remaining <= 0:
            raise _Timeout(kind)
        try:
            return self.conn.recv(remaining)
        except TimeoutError:
            raise _Timeout(kind) from None

    def _read(self, rec: RequestRecord, stream: bool) -> None:
        resp = ResponseHead("POST")
        conn = self.conn
        first = True
        while not resp.headers_complete:
            try:
                data = self._recv(rec, resp)
            except ConnectionResetError:
                if first:
                    raise _Stale("connection reset before any response") from None
                raise
            if not data:
                if first:
                    raise _Stale("connection closed before any response")
                raise HTTPParseError("connection closed before the end of the response headers")
            first = False
            resp.feed(data)
        rec.headers_at = _perf()
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
        """The hot loop: every recv is stamped, events are parsed as soon as complete."""
        parser = SSEParser()
        chunk_of = self.config.endpoint.chunk
        loads = orjson.loads
        token_times = rec.token_times
        texts = rec.texts
        finished_at: float | None = None
        now = rec.headers_at or _perf()
        data = resp.take_body()
        while True:
            if data:
                for ev in parser.feed(data):
                    rec.events += 1
                    raw = ev.data
                    if raw == b"[DONE]":
                        rec.end = now
                        self._drain(rec, resp)
                        return
                    if not raw:
                        continue
                    try:
                        obj = loads(raw)
                    except orjson.JSONDecodeError:
                        rec.fail(FailureKind.BAD_EVENT, f"data line is not JSON: {_clip(raw)}")
                        self.conn.close()
                        return
                    if not isinstance(obj, dict):
                        rec.fail(FailureKind.BAD_EVENT, f"data is not a JSON object: {_clip(raw)}")
                        self.conn.close()
                        return
                    err = error_message(obj)
                    if err is not None or ev.event == b"error":
                        rec.fail(FailureKind.ERROR_EVENT, err or _clip(raw))
                        self.conn.close()
                        return
                    try:
                        chunk = chunk_of(obj)
                    except (AttributeError, TypeError, IndexError, KeyError) as exc:
                        why = f"unexpected chunk shape ({exc}): {_clip(raw)}"
                        rec.fail(FailureKind.BAD_EVENT, why)
                        self.conn.close()
                        return
                    if chunk.text:
                        token_times.append(now)
                        texts.append(chunk.text)
                        if chunk.content and rec.first_content_at is None:
                            rec.first_content_at = now
                    if chunk.finish_reason:
                        rec.finish_reason = chunk.finish_reason
                        finished_at = now
                    if chunk.usage:
                        rec.usage = chunk.usage
            if resp.message_complete:
                break
            raw_data = self._recv(rec, resp)
            now = _perf()
            resp.feed(raw_data)  # b"" (peer closed) raises HTTPParseError if the body is short
            data = resp.take_body()
        # The body ended cleanly without [DONE]: complete only if a finish_reason came.
        if finished_at is None:
            what = "no [DONE] and no finish_reason" if token_times else "no tokens"
            rec.fail(FailureKind.TRUNCATED, f"stream ended with {what} after {rec.events} events")
            return
        rec.end = now
        if not token_times:
            rec.fail(FailureKind.NO_TOKENS, "stream finished without any generated text")

    def _drain(self, rec: RequestRecord, resp: ResponseHead) -> None:
        """After [DONE]: read to the end of the body so the connection can be reused."""
        try:
            while not resp.message_complete:
                data = self._recv(rec, resp)
                resp.feed(data)
                resp.take_body()
        except Exception:
            self.conn.close()  # the request is complete; only the connection is lost
        if rec.end is not None and not rec.token_times:
            rec.fail(FailureKind.NO_TOKENS, "stream finished without any generated text")

    def _read_body(self, rec: RequestRecord, resp: ResponseHead, limit: int | None) -> bytes:
        parts = [resp.take_body()]
        size = len(parts[0])
        while not resp.message_complete:
            if limit is not None and size > limit:
                self.conn.close()
                break
            data = self._recv(rec, resp)
            resp.feed(data)
            part = resp.take_body()
            size += len(part)
            parts.append(part)
        rec.end = _perf()
        return b"".join(parts)

    def _read_full(self, rec: RequestRecord, resp: ResponseHead, stream: bool) -> None:
        body = self._read_body(rec, resp, None)
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            rec.fail(FailureKind.BAD_RESPONSE, f"response is not JSON: {_clip(body)}")
            return
        err = error_message(obj)
        if err is not None:
            rec.fail(FailureKind.ERROR_EVENT, err)
            return
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
            rec.fail(FailureKind.BAD_RESPONSE, f"no choices in the response: {_clip(body)}")
            return
        if stream:
            rec.fail(FailureKind.BAD_RESPONSE, "asked for a stream, got a single JSON response")
            return
        try:
            text = self.config.endpoint.full_text(obj)
        except (AttributeError, TypeError, IndexError, KeyError) as exc:
            rec.fail(FailureKind.BAD_RESPONSE, f"unexpected response shape ({exc}): {_clip(body)}")
            return
        rec.texts.append(text)
        rec.usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else None
        choice = obj["choices"][0] if obj["choices"] else {}
        rec.finish_reason = choice.get("finish_reason") if isinstance(choice, dict) else None

    def _read_error(self, rec: RequestRecord, resp: ResponseHead) -> None:
        kind = FailureKind.HTTP.format(status=rec.status)
        try:
            body = self._read_body(rec, resp, _MAX_ERROR_BODY)
        except (_Timeout, OSError, HTTPParseError):
            body = b""
            self.conn.close()
        rec.fail(kind, f"HTTP {rec.status}: {error_text(body)}")


try:  # the real poll/select: with a zero timeout they never block the gevent hub
    _poll: Any = monkey.get_original("select", "poll")
except AttributeError:  # no poll (Windows)
    _poll = None
_select: Any = monkey.get_original("select", "select")


def _closed_while_idle(conn: Connection) -> bool:
    """True when an idle connection is readable: EOF, a reset or stray bytes, not reusable."""
    sock = conn.sock
    try:
        fd = sock.fileno() if sock is not None else -1
    except OSError:
        return True
    if fd < 0:
        return True
    if _poll is not None:  # poll, not select: any descriptor number (select stops at 1024)
        p = _poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(0))
    return bool(_select([fd], [], [], 0)[0])


def _clip(raw: bytes, n: int = 200) -> str:
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= n else text[:n] + "..."


def _timeout_message(kind: str, cfg: ClientConfig) -> str:
    if kind == FailureKind.FIRST_TOKEN_TIMEOUT:
        return f"no first token within {cfg.first_token_timeout:g} s"
    return f"request not complete within {cfg.request_timeout:g} s"


def _classify_oserror(exc: OSError, rec: RequestRecord, origin: str) -> tuple[str, str]:
    if rec.start == 0.0:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return FailureKind.CONNECT, f"cannot connect to {origin}: {reason}"
    if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED) or isinstance(
        exc, ConnectionError
    ):
        kind = FailureKind.DROPPED if rec.status else FailureKind.RESET
        return kind, f"connection reset ({exc.strerror or exc})"
    return FailureKind.DROPPED if rec.status else FailureKind.RESET, f"socket error: {exc}"
