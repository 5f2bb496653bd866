"""A minimal keep-alive HTTP/1.1 connection on gevent sockets, for timestamping reads.

Locust's FastHttpSession buffers streamed bodies (about 1 KiB before ``iter_lines`` yields),
which hides when each token arrived. Here the caller does every ``recv`` itself and stamps
it; the HTTP framing (status, headers, chunked or length-delimited bodies) is parsed by
geventhttpclient's llhttp-based parser, which Locust already ships.
"""

from __future__ import annotations

import contextlib
import select
import socket as _stdsocket
import struct
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import gevent.socket as gsocket
from gevent import get_hub, monkey
from gevent import ssl as gssl
from geventhttpclient.response import HTTPResponse

from ..errors import ConfigError
from .kclock import CMSG_SPACE, SO_TIMESTAMPNS, enable_timestamps

__all__ = [
    "Connection",
    "ConnectionLike",
    "Origin",
    "Oversized",
    "ResponseHead",
    "make_ssl_context",
]

RECV_SIZE = 65536
KiB = 1024


class Oversized(Exception):
    """Something the server sent is past its bound; the message says what and how big."""


@dataclass(frozen=True)
class Origin:
    """Where requests go: scheme, host, port and an optional path prefix."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Origin:
        text = url.strip()
        if "://" not in text:
            text = "http://" + text  # the seed takes host:port and assumes http
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise ConfigError(f"--host must be an http:// or https:// URL, got {url!r}")
        if not parts.hostname:
            raise ConfigError(f"--host has no host name: {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ConfigError(f"--host has an invalid port: {url!r}") from exc
        prefix = parts.path.rstrip("/")
        if prefix.endswith("/v1"):  # OpenAI base URLs often end in /v1; paths add it again
            prefix = prefix[:-3]
        return cls(parts.scheme, parts.hostname, port, prefix)

    @property
    def base(self) -> tuple[str, str, int]:
        """Scheme, host and port: what a browser calls the origin (no path)."""
        return (self.scheme, self.host.lower(), self.port)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.prefix}"


def make_ssl_context(insecure: bool = False, ca_bundle: str | None = None) -> gssl.SSLContext:
    """TLS verified by default; a private CA bundle; or no verification when asked."""
    ctx = gssl.create_default_context(cafile=ca_bundle)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = gssl.CERT_NONE
    return ctx


class ResponseHead(HTTPResponse):
    """llhttp parser that hands body bytes to the caller as they are parsed.

    Header lines are bounded in number and bytes, trailers after the last chunk and 1xx
    interim heads included (the parser keeps them all, and grows a split value by string
    concatenation: unbounded, an endless line would hold a core and memory). The checks run
    in the header callbacks only, never per body byte; past a bound :class:`Oversized` is
    raised out of :meth:`feed`.
    """

    def __init__(
        self, method: str, max_headers: int = 100, max_header_bytes: int = 64 * KiB
    ) -> None:
        super().__init__(method)
        self.parts: list[bytes] = []
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self.header_bytes = 0  # header and trailer names and values, every head so far

    def _on_body(self, buf: bytearray) -> None:  # parser callback, once per body fragment
        self.parts.append(bytes(buf))

    def _on_header_field(self, string: str) -> None:
        self._count(string)
        super()._on_header_field(string)
        if self._header_position > self.max_headers:  # the lines flushed, and this one
            what = "trailer" if self.headers_complete else "response header"
            raise Oversized(f"more than {self.max_headers} {what}s")

    def _on_header_value(self, string: str) -> None:
        self._count(string)
        super()._on_header_value(string)

    def _count(self, string: str) -> None:
        self.header_bytes += len(string)
        if self.header_bytes > self.max_header_bytes:
            what = "trailers" if self.headers_complete else "response headers"
            raise Oversized(f"{what} over {self.max_header_bytes} bytes")

    @property
    def header_count(self) -> int:
        """Header lines parsed so far."""
        return int(self._header_position) - 1

    @property
    def interim(self) -> bool:
        """The head read is a 1xx interim answer (100 Continue, 103 Early Hints): the final
        one follows on the same connection (RFC 9110 15.2). 101 is final: no upgrade is
        ever asked for, so it is an answer (an error) like any other."""
        code = self.status_code
        return 100 <= code < 200 and code != 101

    def take_body(self) -> bytes:
        parts = self.parts
        if not parts:
            return b""
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        return data


class ConnectionLike(Protocol):
    """What :class:`~llm_users.wire.client.LLMClient` needs of a connection (fakes implement it).

    A fake without kernel stamps sets ``stamped`` and ``pollable`` False and leaves
    ``recv_real`` None: the client then times every read itself.
    """

    kernel_stamps: bool  # asked for: stamp reads where the socket can (plain TCP on Linux)
    stamped: bool  # this socket's reads carry kernel stamps (known once connected)
    recv_real: float | None  # the last read's kernel stamp, CLOCK_REALTIME s; None: none

    @property
    def connected(self) -> bool: ...

    @property
    def pollable(self) -> bool:
        """True only for a :class:`~llm_users.wire.poller.PolledConnection` the process's
        poller may read (plain TCP, connected)."""
        ...

    def connect(self) -> None: ...

    def closed_while_idle(self) -> bool: ...

    def send(self, data: bytes) -> None: ...

    def recv(self, timeout: float | None) -> bytes: ...

    def close(self) -> None: ...


_TIMESPEC = struct.Struct("@qq")  # struct timespec on 64-bit Linux: seconds, nanoseconds


class Connection:
    """One persistent connection; reconnects lazily after a close.

    With ``kernel_stamps`` (plain TCP on Linux) every read also gives the kernel's arrival
    time of the newest segment it returned, as CLOCK_REALTIME seconds in ``recv_real``
    (None when the kernel gave none). Over TLS there is none: the SSL socket has no recvmsg.
    """

    def __init__(
        self,
        origin: Origin,
        ssl_context: gssl.SSLContext | None,
        connect_timeout: float,
        kernel_stamps: bool = False,
    ):
        self.origin = origin
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.sock: gsocket.socket | None = None
        self.kernel_stamps = kernel_stamps and origin.scheme == "http"
        self.stamped = False  # this socket's reads carry kernel stamps
        self.recv_real: float | None = None
        # Plain TCP: a read watcher of our own, so a read waits for data FIRST and then
        # reads once. gevent's recv tries first, and when nothing has arrived (the usual
        # case: the next token is a decode step away) that costs a failed syscall and a
        # raised EAGAIN per read. Not over TLS: the SSL layer may hold decrypted bytes
        # the kernel no longer reports as readable.
        self._watcher: Any = None
        self._more = False  # the last read filled the buffer: more is likely waiting

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def connect(self) -> None:
        o = self.origin
        sock = gsocket.create_connection((o.host, o.port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
            if o.scheme == "https":
                assert self.ssl_context is not None
                sock = self.ssl_context.wrap_socket(sock, server_hostname=o.host)
            self.stamped = self.kernel_stamps and enable_timestamps(sock)
            if o.scheme == "http":
                self._watcher = get_hub().loop.io(sock.fileno(), 1)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._more = False

    def closed_while_idle(self) -> bool:
        """True when an idle connection is readable: EOF, a reset or stray bytes, not reusable."""
        sock = self.sock
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

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def recv(self, timeout: float | None) -> bytes:
        """Whatever bytes have arrived (blocks until some do); b"" when the peer closed."""
        sock = self.sock
        assert sock is not None
        watcher = self._watcher
        if watcher is not None and not self._more:
            _wait(watcher, timeout)  # socket.timeout past it, as sock.recv would raise
        sock.settimeout(timeout)
        if not self.stamped:
            data = sock.recv(RECV_SIZE)
        else:
            data, anc, _flags, _addr = sock.recvmsg(RECV_SIZE, CMSG_SPACE)
            self.recv_real = _stamp(anc)
        self._more = len(data) == RECV_SIZE
        return data

    @property
    def pollable(self) -> bool:
        """Plain TCP, connected: :mod:`~llm_users.wire.poller` may read it (never TLS: the SSL
        layer may hold decrypted bytes the kernel no longer reports as readable)."""
        return self._watcher is not None and self.sock is not None

    def fileno(self) -> int:
        assert self.sock is not None
        return int(self.sock.fileno())

    def read_ready(self) -> bytes:
        """One read that never waits, for a socket the poller saw readable (the kernel's
        stamp in ``recv_real``); BlockingIOError when nothing is there after all."""
        raw = self.sock._sock  # type: ignore[union-attr]  # the non-blocking stdlib socket
        if not self.stamped:
            data: bytes = raw.recv(RECV_SIZE)
        else:
            data, anc, _flags, _addr = raw.recvmsg(RECV_SIZE, CMSG_SPACE)
            self.recv_real = _stamp(anc)
        self._more = False  # the poller reads again only when the socket is readable
        return data

    def close(self) -> None:
        sock, self.sock = self.sock, None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


_SOL_SOCKET = _stdsocket.SOL_SOCKET


def _stamp(anc: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's receive time in a recvmsg's ancillary data (CLOCK_REALTIME seconds)."""
    real = None
    for level, kind, raw in anc:
        if level == _SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(raw)
            real = sec + nsec * 1e-9
    return real


_wait = gsocket.wait  # gevent's public "block until this watcher is ready, or time out"

try:  # the real poll/select: with a zero timeout they never block the gevent hub
    _poll: Any = monkey.get_original("select", "poll")
except AttributeError:  # no poll (Windows)
    _poll = None
_select: Any = monkey.get_original("select", "select")
