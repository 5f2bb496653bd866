"""Hostile answers, one per fault mode: what a broken or malicious server sends, to prove
that the client stays bounded (tests/integration/test_hostile.py)."""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

from aiohttp import web

__all__ = ["DEPTH", "hostile_answer"]

DEPTH = 1000  # levels of JSON nesting: 2 KB, past msgspec's and json's recursion limits

_TOKEN = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
_DONE = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


def _deep() -> bytes:
    return b'{"choices":[{"delta":{"content":' + b"[" * DEPTH + b"]" * DEPTH + b"}}]}"


async def hostile_answer(
    request: web.Request, rec: dict[str, Any], fault: str
) -> web.StreamResponse:
    """The fault's answer; ``rec`` says what was sent (status, completed: never)."""
    if fault == "deep_error":
        return await _whole(request, rec, 500, b'{"error":' + b"[" * DEPTH + b"]" * DEPTH + b"}")
    if fault == "script_flood":
        return await _whole(request, rec, 502, b"<script" * (65536 // 7), "text/html")
    resp = web.StreamResponse(headers={"Cache-Control": "no-cache"})
    resp.content_type = "text/event-stream"
    rec["status"] = 200
    try:
        await resp.prepare(request)
        rec["headers_sent_at"] = perf_counter()
        if fault == "deep_json":
            await resp.write(_TOKEN + b"data: " + _deep() + b"\n\n")
            await resp.write(_DONE)
            await resp.write_eof()
        elif fault == "endless_tokens":
            burst = _TOKEN * 64
            while True:  # until the client gives up (ConnectionError)
                await resp.write(burst)
                await asyncio.sleep(0)
        else:  # held_open: a whole answer, then the body never ends
            await resp.write(_TOKEN * 3 + _DONE)
            rec["completed"] = True  # the client has every byte of the answer
            rec["finish_reason"] = "stop"
            while request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(0.05)
    except ConnectionError:
        rec["client_disconnected"] = True
    rec["done_at"] = perf_counter()
    return resp


async def _whole(
    request: web.Request,
    rec: dict[str, Any],
    status: int,
    body: bytes,
    ctype: str = "application/json",
) -> web.StreamResponse:
    rec["status"] = status
    resp = web.Response(status=status, body=body, content_type=ctype)
    rec["done_at"] = perf_counter()
    return resp
