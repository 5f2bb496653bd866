"""The bench's locustfile: the plugin unchanged, with a user that tags its requests.

``TaggedUser`` is ``LLMUser`` with two additions through the documented extension points,
nothing in the timed path:

* ``max_tokens`` carries a unique tag (larger than any simulated output, so the output is
  unchanged). The simulator records ``max_tokens`` and so does the client's ``--records``:
  every client request pairs *exactly* with the simulator's record of it.
* each user opens its connection in ``on_start``, so that every request's ``start_wall``
  (taken before a connection would be opened) is its timed start to within microseconds;
  the plugin's own start is taken after connecting anyway, so no figure changes.
* with ``LLM_BENCH_STAGGER_S`` set, user k of n waits k/n of that many seconds before its
  first request (``on_start``), so closed-loop streams of equal length stay evenly spread
  instead of arriving as one synchronised burst per round.
"""

import itertools
import os
from typing import Any

import gevent
from locust import events

import llm_users

llm_users.register(events)

TAG_BASE = 1_000_000  # tags are TAG_BASE * (pid % 2000 + 1) + n: above any output length


class TaggedUser(llm_users.BaseLLMUser):
    _tags: Any = None
    _tags_pid = 0
    _started = itertools.count()

    def on_start(self) -> None:
        super().on_start()
        if self.llm is not None and not self.llm.conn.connected:
            self.llm.conn.connect()
        stagger = float(os.environ.get("LLM_BENCH_STAGGER_S") or 0)
        users = int(os.environ.get("LLM_BENCH_USERS") or 1)
        if stagger > 0:
            k = next(TaggedUser._started)
            gevent.sleep(stagger * (k % users) / users)

    def next_request(self) -> dict[str, Any]:
        body = super().next_request()
        cls = TaggedUser
        if cls._tags is None or cls._tags_pid != os.getpid():  # per (forked) process
            cls._tags_pid = os.getpid()
            cls._tags = itertools.count(TAG_BASE * (os.getpid() % 2000 + 1))
        body["max_tokens"] = next(cls._tags)
        return body


if os.environ.get("LLM_BENCH_GC_LOG"):  # diagnostics: every collection over 1 ms, at exit
    import atexit
    import gc
    import sys
    import time

    _gc_t0: list[float] = [0.0]
    _gc_slow: list[tuple[float, int, float, int]] = []

    def _gc_timer(phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            _gc_t0[0] = now
        elif now - _gc_t0[0] > 0.001:
            _gc_slow.append(
                (_gc_t0[0], info["generation"], (now - _gc_t0[0]) * 1000.0, info["collected"])
            )

    gc.callbacks.append(_gc_timer)

    @atexit.register
    def _gc_report() -> None:
        for t, gen, ms, n in _gc_slow:
            sys.stderr.write(f"gc: at {t:.3f} gen {gen} took {ms:.1f} ms, collected {n}\n")
        sys.stderr.write(f"gc: counts {gc.get_count()}, stats {gc.get_stats()}\n")
