"""``python -m bench.decode_clock``: how late the simulator writes tokens at N concurrent streams,
per-stream pacing against the one global decode clock.

N streaming chat requests arrive spread over one second (raw asyncio sockets, read to the end);
each token's lateness is its write time (the simulator's record) minus its due time
(``first_token_due + i * itl``: the same formula in both modes, since the global clock's ticks
of one stream are consecutive). Simulator on CPU 0, this client on CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

from bench.harness import simulator_class


async def _one(port: int, payload: bytes, delay: float) -> int:
    await asyncio.sleep(delay)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode() + payload)
    total = 0
    while chunk := await reader.read(65536):
        total += len(chunk)
    writer.close()
    return total


async def _drive(port: int, streams: int, tokens: int) -> None:
    body = {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}]}
    body.update(max_tokens=tokens, stream=True)
    payload = json.dumps(body).encode()
    await asyncio.gather(*(_one(port, payload, i / streams) for i in range(streams)))


def _ms(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000.0


def _summary(late: list[float]) -> dict[str, Any]:
    if not late:
        return {}
    return {
        "writes": len(late),
        "mean": round(statistics.mean(late) * 1000.0, 3),
        "p50": round(_ms(late, 0.5), 3),
        "p99": round(_ms(late, 0.99), 3),
        "max": round(max(late) * 1000.0, 3),
    }


def measure(mode: str, streams: int, tokens: int, itl_ms: float) -> dict[str, Any]:
    sim_cls = simulator_class()
    knobs = {"decode_clock": mode, "ttft_ms": 50.0, "itl_ms": itl_ms, "max_records": streams}
    with sim_cls(cpu=0, **knobs) as sim:
        started = time.perf_counter()
        asyncio.run(_drive(sim.port, streams, tokens))
        wall = time.perf_counter() - started
        records = sim.records()
        clock = sim.stats()["decode_clock"]
    late, steady = [], []
    last_arrival = max(r["received_at"] for r in records)
    for r in records:
        due = r["first_token_due"]
        for i, t in enumerate(r["token_times"]):
            late.append(t - (due + i * itl_ms / 1000.0))
            if t > last_arrival:
                steady.append(late[-1])
    return {
        "mode": mode,
        "streams": streams,
        "completed": sum(r["completed"] for r in records),
        "token_writes": len(late),
        "wall_s": round(wall, 2),
        "late_ms": _summary(late),
        # Once every stream has arrived: decoding only, no request intake in the way.
        "late_ms_after_arrivals": _summary(steady),
        "clock_loop": clock if mode == "global" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--itl-ms", type=float, default=20.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    for mode in ("per-stream", "global"):
        print(json.dumps(measure(mode, args.streams, args.tokens, args.itl_ms)), flush=True)


if __name__ == "__main__":
    main()
