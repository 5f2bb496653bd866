"""When a request's first bytes came off the socket, and when its client hung up.

aiohttp hands a request to its handler only after its event loop got round to parsing it; in
a burst of 128 requests the last one waits for the 127 before it. A real server's time to
first token counts from the request's arrival, so the simulator stamps ``received_at`` when
the bytes arrive and schedules its tokens from that instant, not from the handler's start.

The stamp is taken by a thin wrapper around aiohttp's protocol (its ``RequestHandler`` has
``__slots__``, so nothing can be added to it). One stamp per connection is pending at a time:
the first ``data_received`` after the previous request's body was read. That is exact for
clients that send one request at a time per connection (every HTTP/1.1 client without
pipelining, the load generator included). The same wrapper sees the client's FIN (or reset)
the moment the loop reads it, and tells the request's handler (:func:`on_hangup`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter
from typing import Any

_pending: dict[Any, float | None] = {}  # transport -> first-byte time of the next request
_hangup: dict[Any, Callable[[float], None]] = {}  # transport -> its request's hang-up callback


class StampingProtocol(asyncio.Protocol):
    """Delegates everything to aiohttp's protocol; notes when each request's bytes arrive."""

    def __init__(self, inner: asyncio.Protocol) -> None:
        self._inner = inner
        self._transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        _pending[transport] = None
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if data and _pending.get(self._transport, 0.0) is None:
            _pending[self._transport] = perf_counter()
        self._inner.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        _pending.pop(self._transport, None)
        if exc is not None:  # reset by the peer (a client closing with unread data)
            _hung_up(self._transport)
        _hangup.pop(self._transport, None)  # closed by the server itself: not a hang-up
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        _hung_up(self._transport)  # the client's FIN
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def stamping(factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
    """A protocol factory for ``loop.create_server`` that wraps ``factory``'s protocols."""
    return lambda: StampingProtocol(factory())


def _hung_up(transport: Any) -> None:
    callback = _hangup.pop(transport, None)
    if callback is not None:
        callback(perf_counter())


def on_hangup(transport: Any, callback: Callable[[float], None] | None) -> None:
    """Call ``callback(perf_counter)`` when the client hangs up on ``transport`` (its FIN or
    reset: never the server's own close), until called again with None. Nothing happens
    on a server not built with :func:`stamping`."""
    if callback is None:
        _hangup.pop(transport, None)
    elif transport is not None:
        _hangup[transport] = callback


def take_arrival(transport: Any, default: float) -> float:
    """The first-byte time of the request now being handled on ``transport``; call it for every
    request, once its body has been read. ``default`` when the server was not built with
    :func:`stamping`."""
    at = _pending.get(transport)
    if at is None:
        return default
    _pending[transport] = None
    return at
