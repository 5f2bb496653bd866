"""The loop-lag note tells the generator's own load from CPU contention (plugin/finish.py)."""

from __future__ import annotations

import time

import gevent

from llm_users.plugin.finish import lag_note
from llm_users.plugin.looplag import LoopLagMonitor


def test_the_note_names_the_cause_from_the_processes_cpu_share() -> None:
    busy = lag_note(12.0, 0.97)
    assert "p99 12.0 ms" in busy and "used 97% of a CPU" in busy and "add workers" in busy
    contended = lag_note(12.0, 0.25)
    assert "only 25%" in contended and "contention" in contended
    assert "add workers" not in contended
    assert "add workers" in lag_note(12.0, None)  # a master: the workers' CPU is not known


def test_cpu_share_is_this_processs_cpu_over_the_wall_time() -> None:
    mon = LoopLagMonitor()
    mon.start()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    gevent.sleep(0.3)  # idle: the process uses almost no CPU
    mon.stop()
    expected = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    share = mon.cpu_share()
    assert share is not None and abs(share - expected) < 0.05 and share < 0.5
