"""Fetching a server's /metrics from the load generator: a periodic greenlet and a probe.

Everything is bounded: each fetch by a timeout and a size cap, the page by the parser's
series cap. Parsing (pure Python, ~20 ms for the known families of a 200 KB vLLM page)
goes in small pieces with sleeps between, so the loop timing the users' streams keeps running.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import ssl as gssl

from ..wire.http import Connection, Origin, ResponseHead, make_ssl_context
from .names import FAMILIES, Known, family_key
from .parse import MAX_BYTES, NOT_PROMETHEUS, Parsed, parse
from .window import Window

__all__ = ["ScrapeError", "Scraper", "fetch", "metrics_url", "probe"]


class ScrapeError(Exception):
    """A fetch that gave no page: the message is the short reason ("HTTP 404", "timeout")."""


def metrics_url(host: str) -> str:
    """The /metrics URL of a server given as ``--host`` (vLLM and others serve it at the root)."""
    o = Origin.parse(host)
    return f"{o.scheme}://{o.host_header}/metrics"


def _target(url: str) -> tuple[Origin, str]:
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ScrapeError(f"not an http(s) URL: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ScrapeError(f"bad port in {url!r}") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Origin(parts.scheme, parts.hostname, port, ""), path


def fetch(
    url: str,
    timeout_s: float = 2.0,
    max_bytes: int = MAX_BYTES,
    ssl_context: gssl.SSLContext | None = None,
) -> bytes:
    """GET ``url`` on gevent sockets: the body of a 200, else :class:`ScrapeError`."""
    origin, path = _target(url)
    if origin.scheme == "https" and ssl_context is None:
        ssl_context = make_ssl_context()
    conn = Connection(origin, ssl_context, timeout_s)
    deadline = time.perf_counter() + timeout_s
    try:
        with gevent.Timeout(timeout_s, ScrapeError(f"timeout after {timeout_s:g} s")):
            conn.connect()
            conn.send(
                f"GET {path} HTTP/1.1\r\nHost: {origin.host_header}\r\n"
                "Accept: text/plain\r\nConnection: close\r\n\r\n".encode("latin-1")
            )
            resp = ResponseHead("GET")
            parts: list[bytes] = []
            size = 0
            while not resp.message_complete:
                data = conn.recv(max(0.001, deadline - time.perf_counter()))
                resp.feed(data)  # b"" (closed early) raises HTTPParseError
                if resp.headers_complete:
                    if resp.status_code != 200:
                        raise ScrapeError(f"HTTP {resp.status_code}")
                    length = int(str(resp.get("content-length") or 0))
                    part = resp.take_body()
                    size += len(part)
                    if size > max_bytes or length > max_bytes:
                        raise ScrapeError(f"page larger than {max_bytes} bytes, not read")
                    parts.append(part)
                if not data:
                    break
            return b"".join(parts)
    except ScrapeError:
        raise
    except TimeoutError:
        raise ScrapeError(f"timeout after {timeout_s:g} s") from None
    except ConnectionRefusedError:
        raise ScrapeError("connection refused") from None
    except Exception as exc:  # OSError, TLS, a malformed HTTP answer
        raise ScrapeError(f"{type(exc).__name__}: {exc}"[:120]) from None
    finally:
        conn.close()


def _keys(known: Known) -> tuple[str, ...]:
    return tuple(family_key(n) for n in known.names)


def _parse_off_loop(body: bytes, max_bytes: int, keep: frozenset[str] | None = None) -> Parsed:
    """Parse in gevent's thread pool: the loop keeps serving the users' streams meanwhile."""
    result: Parsed = gevent.get_hub().threadpool.apply(parse, (body, max_bytes), {"keep": keep})
    return result


def _pause() -> None:
    gevent.sleep(0.001)


def probe(
    url: str,
    timeout_s: float = 2.0,
    max_bytes: int = MAX_BYTES,
    families: tuple[Known, ...] = FAMILIES,
) -> tuple[bool, str]:
    """One try, for ``--server-metrics auto``: (True, "vllm: 14 known families") or (False, why).

    A page with none of ``families`` is refused when they are not the server's (a GPU page)."""
    try:
        body = fetch(url, timeout_s, max_bytes)
    except ScrapeError as exc:
        return False, str(exc)
    parsed = _parse_off_loop(body, max_bytes)
    if not parsed.ok:
        return False, parsed.note or NOT_PROMETHEUS
    w = Window(url, families=families)
    w.add(0.0, parsed)
    n = len(w.families)
    if not n and families is not FAMILIES:
        return False, "none of the known families"
    return True, f"{len(parsed.families)} families, {n} known"


class Scraper:
    """Scrapes ``url`` every ``interval_s`` in its own greenlet into a :class:`Window`."""

    def __init__(
        self,
        url: str,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
        max_bytes: int = MAX_BYTES,
        ssl_context: gssl.SSLContext | None = None,
        families: tuple[Known, ...] = FAMILIES,
    ) -> None:
        self.url = url
        self.interval_s = interval_s
        self.timeout_s = min(timeout_s, interval_s * 5)
        self.max_bytes = max_bytes
        self.ssl_context = ssl_context
        self.window = Window(url, families=families)
        self._keep = frozenset(k for f in families for k in _keys(f))
        self._greenlet: gevent.Greenlet | None = None

    def scrape_once(self) -> None:
        try:
            body = fetch(self.url, self.timeout_s, self.max_bytes, self.ssl_context)
        except ScrapeError as exc:
            self.window.add(time.perf_counter(), Parsed(note=str(exc)))
            return
        t = time.perf_counter()  # gauges' time: when the page arrived
        # Only the known families (the parser is pure Python, ~0.5 ms per KB), in pieces with
        # a 1 ms sleep between: on a 200 KB vLLM-like page the loop lag stays under ~10 ms
        # (p99 8 ms), against ~25 ms from the thread pool (GIL) and ~100 ms parsing it whole.
        parsed = parse(body, self.max_bytes, keep=self._keep, pause=_pause)
        self.window.add(t, parsed)

    def _run(self, first_done: bool = False) -> None:
        next_t = time.perf_counter()
        while True:
            if not first_done:
                self.scrape_once()
            first_done = False
            next_t += self.interval_s
            now = time.perf_counter()
            if next_t < now:  # a slow scrape: skip the missed ticks rather than burst
                next_t = now
            gevent.sleep(next_t - now)

    def start(self, baseline_now: bool = False) -> None:
        """Start scraping now; the first scrape is the baseline of every counter.

        With ``baseline_now`` that first scrape is taken before returning (at test start,
        before any user sends a request), the next ones in the loop's greenlet."""
        if self._greenlet is None:
            if baseline_now:
                self.scrape_once()
            self._greenlet = gevent.spawn(self._run, baseline_now)

    def stop(self, final: bool = True) -> None:
        """Stop the loop; with ``final``, one last scrape so the window ends with the test."""
        g, self._greenlet = self._greenlet, None
        if g is not None:
            g.kill(block=True)
            if final:
                self.scrape_once()

    def result(self) -> dict[str, Any]:
        return self.window.result()
