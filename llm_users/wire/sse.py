"""Incremental Server-Sent Events parser: bytes in, complete events out.

The one SSE parser of the project. It follows the WHATWG event-stream rules that matter
for OpenAI-compatible servers: lines end in LF, CRLF or CR; a blank line dispatches the
event; ``data`` lines accumulate (joined by LF); ``:`` starts a comment; ``event``, ``id``
and ``retry`` are fields; one optional space after the colon is dropped. Bytes are kept
as bytes until an event is complete, so a multi-byte UTF-8 character split across reads
is never decoded half-way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["SSEEvent", "SSEParser"]

_LF = 10
_COLON = 58
_SPACE = 32
_BLANK = (b"",)  # one blank line: it dispatches the event being read
_new = tuple.__new__  # builds an SSEEvent without its Python-level __new__ (once per event)


class SSEEvent(NamedTuple):
    """One dispatched event: ``event`` is ``b""`` for the default "message" type."""

    data: bytes
    event: bytes = b""


class SSEParser:
    """Feed raw body bytes with :meth:`feed`; it returns the events completed by them.

    Linear in the bytes received, however long a line: the pieces of an unfinished line
    are kept in a list, as they came, and joined once, when the line ends (never
    re-concatenated on every read). :attr:`buffered` says how much is held, so that the
    caller can bound it.
    """

    __slots__ = (
        "_tail",
        "_tail_len",
        "_data",
        "_data_len",
        "_event",
        "_pending_cr",
        "comments",
        "last_id",
        "retry",
    )

    def __init__(self) -> None:
        self._tail: list[bytes] = []  # the pieces of an unfinished line, as received
        self._tail_len = 0
        self._data: list[bytes] = []  # the data lines of the event being read
        self._data_len = 0
        self._event = b""
        self._pending_cr = False  # the previous chunk ended in CR: a following LF is its pair
        self.comments = 0
        self.last_id: bytes | None = None
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``, in order."""
        payloads, events = self.feed_batch(chunk)
        if payloads:
            return [_new(SSEEvent, (p, b"")) for p in payloads]
        return events

    def feed_batch(self, chunk: bytes) -> tuple[list[bytes], list[SSEEvent]]:
        """:meth:`feed` for a hot read loop: ``(payloads, [])`` where every event completed
        by ``chunk`` is the common shape (one ``data: `` line, default type), given as its
        data alone; else ``([], events)``. Never both."""
        if not chunk:
            return [], []
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            # Rare path: normalise CRLF and lone CR to LF. A CR at the very end may be
            # the first half of a CRLF split across reads: remember it.
            if chunk.endswith(b"\r"):
                self._pending_cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        tail = self._tail
        if (
            chunk[:6] == b"data: "
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk[-1:] == b"\n"
            and not tail
            and not self._data
            and not self._event
        ):  # the commonest read of all: one whole event, "data: X\n\n", nothing held
            self._tail_len = 0
            return [chunk[6:-2]], []
        if tail:
            if b"\n" not in chunk:  # the line goes on: keep the piece, copy nothing
                tail.append(chunk)
                self._tail_len += len(chunk)
                return [], []
            tail.append(chunk)
            buf = b"".join(tail)  # the line ends here: one copy of its pieces
            tail.clear()
        else:
            buf = chunk
        lines = buf.split(b"\n")
        last = lines.pop()
        if last:
            tail.append(last)
        self._tail_len = len(last)
        # The common shape: whole events of one "data: " line each, nothing held before
        # them; the lines alternate data, blank. Checked and taken in C-level steps.
        if len(lines) > 1 and not self._data and not self._event:
            odd = lines.pop() if len(lines) & 1 else None
            if not any(lines[1::2]):
                datas = lines[::2]
                payloads = [v[6:] for v in datas if v[:6] == b"data: "]
                if len(payloads) == len(datas):
                    if odd is not None:
                        self._lines((odd,), [])  # a line that starts an event: it ends none
                    return payloads, []
            if odd is not None:
                lines.append(odd)
        out: list[SSEEvent] = []
        if lines:
            self._lines(lines, out)
        return [], out

    def _lines(self, lines: Iterable[bytes], out: list[SSEEvent]) -> None:
        """Applies complete lines (without their ends), appending the events they end."""
        data = self._data
        held = self._data_len
        for line in lines:
            if not line:
                if data:
                    payload = data[0] if len(data) == 1 else b"\n".join(data)
                    out.append(_new(SSEEvent, (payload, self._event)))
                    data.clear()
                    held = 0
                self._event = b""
            elif line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                data.append(value)
                held += len(value)
            elif line[0] == _COLON:
                self.comments += 1
            else:
                held += self._field(line)
        self._data_len = held

    def _field(self, line: bytes) -> int:
        """Applies a field line; returns the bytes it added to the event's data."""
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":  # "data" with no colon: an empty data line
            self._data.append(value)
            return len(value)
        if name == b"event":
            self._event = value
        elif name == b"id" and b"\0" not in value:
            self.last_id = value
        elif name == b"retry" and value.isdigit():
            self.retry = int(value)
        # Unknown fields are ignored, as the specification says.
        return 0

    def close(self) -> list[SSEEvent]:
        """End of the body: a final event not followed by a blank line is discarded (spec)."""
        self._tail.clear()
        self._tail_len = 0
        self._data.clear()
        self._data_len = 0
        return []

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a dispatched event (0 at a clean boundary)."""
        return self._tail_len + self._data_len

    @property
    def held(self) -> int:
        """What the parser holds, for a bound: :attr:`buffered` plus one per pending data
        line (so that endless empty ``data:`` lines, which add no bytes, count too)."""
        return self._tail_len + self._data_len + len(self._data)
