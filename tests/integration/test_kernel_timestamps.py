"""A blocked event loop moves user-space stamps, not the kernel's: TTFT against the
simulator's own records (its ``first_token_at`` minus the request's arrival).

The loop is held 50 ms at a time, less than the gap between two writes of a stream (100 ms):
a read then returns one segment, whose kernel stamp is its arrival. (Segments that wait in
the socket while a later one arrives are merged by Linux and carry the later one's time;
see docs/reference/definitions.md.)"""

from __future__ import annotations

import time
from typing import Any

import gevent
import pytest

from llm_users.measure.per_request import RequestResult
from llm_users.record import RequestRecord
from llm_users.wire.kclock import kernel_supported

from ..helpers import mean, run_in_process

pytestmark = pytest.mark.skipif(not kernel_supported(), reason="kernel stamps are Linux-only")

BLOCK_S = 0.050  # each busy wait: 50 ms without a yield


def _blocker() -> None:
    """Holds the event loop 50 ms at a time, leaving it 1 ms in between."""
    while True:
        end = time.perf_counter() + BLOCK_S
        while time.perf_counter() < end:
            pass
        gevent.sleep(0.001)


def _run(sim: Any, timestamps: str) -> tuple[list[float], list[float], dict[str, Any]]:
    """(client - server TTFT, client - server first-token time) per request, in ms."""
    sim.reset()
    collect: list[tuple[RequestRecord, RequestResult]] = []
    blocker = gevent.spawn(_blocker)
    try:
        plugin = run_in_process(
            sim.url,
            *("--stream", "--requests-per-user", "5", "--timestamps", timestamps),
            users=1,  # one request at a time: client and server records pair by order
            collect=collect,
        )
    finally:
        blocker.kill()
    server = sorted(sim.records(), key=lambda r: r["received_at"])
    assert len(collect) == len(server) == 5
    d_ttft, d_first = [], []
    for (rec, res), srv in zip(collect, server, strict=True):
        assert res.ok and rec.timestamps == timestamps
        assert res.ttft_ms is not None and rec.first_token_at is not None
        d_ttft.append(res.ttft_ms - (srv["first_token_at"] - srv["received_at"]) * 1000.0)
        d_first.append((rec.first_token_at - srv["first_token_at"]) * 1000.0)
    summary = plugin.last_summary
    assert summary is not None
    # The streams were read by the process's poller (plain TCP), not by the user itself:
    # at least tokens 2 and 3 of each (100 ms apart, after the head and the first token).
    poller = plugin.ctx.poller
    assert poller is not None and poller.reads >= 5 * 2
    return d_ttft, d_first, summary


def test_a_blocked_loop_moves_user_stamps_but_not_kernel_stamps(simulator: Any) -> None:
    # The first token is due 30 ms after arrival: it lands inside a 50 ms busy wait (the
    # request is written in the 1 ms between two). The next write comes 100 ms later.
    sim = simulator(ttft_ms=30, itl_ms=100, output_tokens=3)
    k_ttft, k_first, k_sum = _run(sim, "kernel")
    u_ttft, u_first, u_sum = _run(sim, "user")
    print(f"\nTTFT client - server, ms: kernel {k_ttft}\n  user {u_ttft}")
    assert k_sum["timestamps"]["source"] == "kernel"
    assert k_sum["timestamps"]["offset_uncertainty_us"] < 100
    assert u_sum["timestamps"]["source"] == "user"
    # Kernel: the segment's arrival, just after the simulator took its time and wrote it
    # (only the write and loopback delivery between), whatever the loop was doing.
    assert all(-0.05 <= d < 2.0 for d in k_first), k_first
    assert abs(mean(k_ttft)) < 2.0, k_ttft
    # User: read when the busy wait let go; the blocker holds the loop 50 of every 51 ms.
    assert mean(u_first) > 5.0 and mean(u_ttft) > 5.0, (u_first, u_ttft)
