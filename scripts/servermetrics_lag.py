"""How late the gevent loop wakes while a 200 KB vLLM-like /metrics page is parsed.

Compares parsing in the loop with parsing in gevent's thread pool (what the scraper does):
``python scripts/servermetrics_lag.py [repeats]``. Prints parse time and loop lag (ms).
"""

from __future__ import annotations

import sys
import time

import gevent
import gevent.monkey

gevent.monkey.patch_all()

from llm_users.measure.histogram import Histogram  # noqa: E402
from llm_users.servermetrics.names import KNOWN_KEYS  # noqa: E402
from llm_users.servermetrics.parse import parse  # noqa: E402
from llm_users.servermetrics.scraper import _parse_off_loop  # noqa: E402
from tests.unit.servermetrics_pages import big_vllm_page  # noqa: E402


def _pause() -> None:
    gevent.sleep(0.001)


def lag_while(work: object, repeats: int) -> tuple[Histogram, Histogram]:
    lag, took = Histogram(), Histogram()
    done = False

    def sampler() -> None:
        while not done:
            t0 = time.perf_counter()
            gevent.sleep(0.001)
            lag.record((time.perf_counter() - t0 - 0.001) * 1000.0)

    g = gevent.spawn(sampler)
    gevent.sleep(0.05)
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()  # type: ignore[operator]
        took.record((time.perf_counter() - t0) * 1000.0)
        gevent.sleep(0.02)
    done = True
    g.join()
    return lag, took


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    page = big_vllm_page(200_000).encode()
    print(f"page: {len(page)} bytes, {repeats} parses each")
    for name, work in (
        ("in the loop", lambda: parse(page)),
        ("thread pool", lambda: _parse_off_loop(page, len(page) + 1)),
        ("known, loop", lambda: parse(page, keep=KNOWN_KEYS)),
        ("known, pool", lambda: _parse_off_loop(page, len(page) + 1, KNOWN_KEYS)),
        ("known, yield", lambda: parse(page, keep=KNOWN_KEYS, pause=_pause)),
        ("all, yield", lambda: parse(page, pause=_pause)),
    ):
        lag, took = lag_while(work, repeats)
        print(
            f"{name:12s} parse p50 {took.percentile(50):.1f} ms | loop lag p50 "
            f"{lag.percentile(50):.2f} p99 {lag.percentile(99):.2f} max {lag.max:.2f} ms"
        )


if __name__ == "__main__":
    main()
