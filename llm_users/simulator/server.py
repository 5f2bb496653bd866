"""The aiohttp application: OpenAI-compatible endpoints and the /sim ground-truth endpoints.

One handler per route, each short; the routes of one server: it reads better whole in one file.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from time import perf_counter
from typing import Any

import orjson
from aiohttp import web

from . import heap
from . import payloads as p
from .arrival import on_hangup, take_arrival
from .config import HOSTILE_FAULTS, SimConfig
from .hostile import hostile_answer
from .looplag import LoopLag
from .messages import messages_body
from .metrics import CONTENT_TYPE, GARBAGE, huge_page
from .parse import BadRequest, make_job, max_tokens, read_prompt
from .pooling import pooled_answer, prefill_s
from .state import SimState
from .stream import BAD_JSON, build_plan, first_token_delay, keepalive_bytes, token_events

STATE = web.AppKey("state", SimState)
LAG = web.AppKey("loop_lag", LoopLag)
RECEIVED_AT = "llm_sim_received_at"  # request key: when its first bytes arrived
MAX_BODY = 256 * 1024 * 1024  # benchmark prompts can be long
JSON = "application/json"
HUGE_METRICS_BYTES = 50 * 1024 * 1024


def build_app(config: SimConfig) -> web.Application:
    """A fresh application serving ``config`` (changeable at runtime via /sim/config)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_arrival, _auth])
    app[STATE] = SimState(config)
    app[LAG] = lag = LoopLag()
    app.on_startup.append(lag.start)
    app.on_cleanup.append(lag.stop)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/rerank", rerank)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/dcgm/metrics", dcgm_metrics)
    app.router.add_get("/sim/records", sim_records)
    app.router.add_get("/sim/stats", sim_stats)
    app.router.add_post("/sim/reset", sim_reset)
    app.router.add_get("/sim/config", sim_config)
    app.router.add_post("/sim/config", sim_config)
    return app


@web.middleware
async def _arrival(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every request takes its arrival stamp (see arrival.py), once its body is in."""
    await request.read()
    request[RECEIVED_AT] = take_arrival(request.transport, perf_counter())
    return await handler(request)


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    """OpenAI-style key check on /v1/*, when the config has a key (the message never echoes it)."""
    key = request.app[STATE].config.api_key
    if key and request.path == "/v1/messages":  # Anthropic's API: the key in x-api-key only
        if request.headers.get("x-api-key", "") != key:
            err = {"type": "authentication_error", "message": "invalid x-api-key"}
            return _json({"type": "error", "error": err}, status=401)
        return await handler(request)
    authorised = request.headers.get("Authorization", "") == f"Bearer {key}"
    if request.path == "/v1/models" and request.headers.get("x-api-key", "") == key:
        authorised = True  # Anthropic's API serves the model list to its key header too
    if key and request.path.startswith("/v1/") and not authorised:
        err = {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
        return _json({"error": err}, status=401)
    return await handler(request)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON)


async def models(request: web.Request) -> web.Response:
    name = request.app[STATE].config.model_name
    model = {"id": name, "object": "model", "owned_by": "llm-users-simulator"}
    return _json({"object": "list", "data": [model]})


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def sim_records(request: web.Request) -> web.Response:
    return _json(list(request.app[STATE].records))


async def sim_stats(request: web.Request) -> web.Response:
    return _json({**request.app[STATE].stats(), "loop_lag_ms": request.app[LAG].stats()})


async def sim_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    heap.settle()  # between runs: the full collection happens here, not mid-run (heap.py)
    request.app[LAG].reset()  # (after the collection: its pause is not the next run's lag)
    return _json({"reset": True})


async def sim_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.method == "POST":
        try:
            state.configure(orjson.loads(await request.read()))
        except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
            return _json(_error_obj(str(exc), "BadRequestError", 400), status=400)
    return _json(state.config.to_dict())


def _error_obj(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


async def metrics(request: web.Request) -> web.Response:
    """vLLM's metrics (or, by the ``metrics`` knob, none, garbage, a huge or a slow page)."""
    state = request.app[STATE]
    state.counts["metrics_scrapes"] += 1
    mode = state.config.metrics
    if mode == "off":
        return web.Response(status=404, text="404: Not Found")
    if mode == "garbage":
        return web.Response(body=GARBAGE, content_type="text/plain")
    if mode == "slow":
        await asyncio.sleep(state.config.metrics_slow_ms / 1000.0)
    page = state.metrics_page()
    if mode == "huge":
        page = huge_page(page, HUGE_METRICS_BYTES)
    return web.Response(body=page, headers={"Content-Type": CONTENT_TYPE})


async def dcgm_metrics(request: web.Request) -> web.Response:
    """The GPUs as NVIDIA's DCGM exporter shows them (see gpu.py)."""
    page = request.app[STATE].gpu_page()
    return web.Response(body=page, headers={"Content-Type": CONTENT_TYPE})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, "chat")


async def completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, "completion")


async def responses(request: web.Request) -> web.StreamResponse:
    return await _complete(request, "responses")


async def messages(request: web.Request) -> web.StreamResponse:
    if "anthropic-version" not in request.headers:  # the real API requires it
        err = {"type": "invalid_request_error", "message": "anthropic-version: header is required"}
        return _json({"type": "error", "error": err}, status=400)
    return await _complete(request, "messages")


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await _pooled(request, "embeddings")


async def rerank(request: web.Request) -> web.StreamResponse:
    return await _pooled(request, "rerank")


async def _pooled(request: web.Request, kind: str) -> web.StreamResponse:
    """Embeddings and rerank: a slot (max_running), the prefill's time, the whole answer."""
    state = request.app[STATE]
    cfg = state.config
    rec = state.open_record(request.path, request[RECEIVED_AT], cfg)
    rec["dispatched_at"] = perf_counter()
    _keep_headers(request, cfg, rec)
    try:
        try:
            req = orjson.loads(await request.read())
            if not isinstance(req, dict):
                raise BadRequest("the body must be a JSON object")
            model = rec["model"] = req.get("model") or cfg.model_name
            body, items, tokens = pooled_answer(kind, req, model)
        except (orjson.JSONDecodeError, BadRequest) as exc:
            return await _send_error(request, rec, 400, str(exc), "BadRequestError")
        rec["items"], rec["prompt_tokens"] = items, tokens
        await state.admit(rec, cfg)
        await _sleep_until(rec["started_at"] + prefill_s(cfg, tokens))
        return await _send(request, rec, 200, orjson.dumps(body), JSON)
    finally:
        state.release(rec)
        state.close_record(rec)


async def _complete(request: web.Request, api: str) -> web.StreamResponse:
    state = request.app[STATE]
    cfg = state.config  # one snapshot per request: runtime changes apply to later ones
    body = await request.read()  # already read: the arrival middleware did
    rec = state.open_record(request.path, request[RECEIVED_AT], cfg)
    rec["dispatched_at"] = perf_counter()
    _keep_headers(request, cfg, rec)
    task = asyncio.current_task()

    def hung_up(at: float) -> None:
        # The client closed mid-request: stamp it, and end the handler where it waits (a
        # real server aborts the request and frees its slot and KV cache).
        rec["cancelled_at"] = at
        if task is not None:
            task.cancel()

    on_hangup(request.transport, hung_up)
    try:
        return await _answer(request, state, cfg, body, api, rec)
    except asyncio.CancelledError:
        if rec["cancelled_at"] is not None:
            rec["client_disconnected"] = True
            rec["done_at"] = perf_counter()
        raise
    finally:
        on_hangup(request.transport, None)
        state.release(rec, leak=cfg.leak_cancelled and rec["cancelled_at"] is not None)
        state.close_record(rec)


def _keep_headers(request: web.Request, cfg: SimConfig, rec: dict[str, Any]) -> None:
    """The request's W3C traceparent, and the headers ``record_headers`` names, into its record."""
    rec["traceparent"] = request.headers.get("traceparent")
    if cfg.record_headers:
        names = [n.strip() for n in cfg.record_headers.split(",") if n.strip()]
        rec["headers"] = {n.lower(): request.headers.get(n) for n in names}


async def _answer(
    request: web.Request,
    state: SimState,
    cfg: SimConfig,
    body: bytes,
    api: str,
    rec: dict[str, Any],
) -> web.StreamResponse:
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        req = None
    if not isinstance(req, dict):
        return await _send_error(request, rec, 400, "Invalid JSON body.", "BadRequestError")
    model = req.get("model") or ""
    rec["model"] = model
    rec["stream"] = bool(req.get("stream"))
    if model and model != cfg.model_name:
        msg = f"The model `{model}` does not exist."
        return await _send_error(request, rec, 404, msg, "NotFoundError")
    try:
        prompt = read_prompt(req, api, want_ids=cfg.prefix_cache)
        cached = 0
        if cfg.prefix_cache and prompt.ids is not None:
            cached = state.prefix.lookup_and_insert(prompt.ids)
            state.note_cache(prompt.tokens, cached)
        job = make_job(cfg, req, api, rec["id"], prompt, cached)
    except BadRequest as exc:
        return await _send_error(request, rec, 400, str(exc), "BadRequestError")
    rec["max_tokens"] = max_tokens(req)
    rec["response_id"] = job.response_id
    rec["prompt_tokens"] = job.prompt_tokens
    rec["cached_tokens"] = job.cached_tokens
    if prompt.roles is not None:
        rec["messages"] = list(prompt.roles)
        rec["num_messages"] = len(prompt.roles)
    fault = rec["fault"] = state.choose_fault(cfg, rec["id"])
    if fault == "reset":
        _reset_connection(request)
        rec["done_at"] = perf_counter()
        return web.Response()  # never reaches the client; aiohttp swallows the write error
    if fault == "http_error":
        return await _http_error(request, cfg, rec)
    if fault in HOSTILE_FAULTS:
        return await hostile_answer(request, rec, fault)
    if fault == "rate_limit":
        msg = "Rate limit reached (simulated)."
        body = p.error_json(msg, "rate_limit_error", 429)
        return await _send(request, rec, 429, body, JSON, {"Retry-After": "1"})
    await state.admit(rec, cfg)
    if rec["stream"]:
        return await _stream(request, cfg, job, fault, rec)
    return await _unary(request, cfg, job, fault, rec)


def _reset_connection(request: web.Request) -> None:
    """Close with SO_LINGER 0, so the kernel sends RST instead of FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _http_error(
    request: web.Request, cfg: SimConfig, rec: dict[str, Any]
) -> web.StreamResponse:
    status = cfg.error_status
    if cfg.error_body == "html":
        return await _send(request, rec, status, p.ERROR_HTML, "text/html")
    if cfg.error_body == "empty":
        return await _send(request, rec, status, b"", None)
    body = p.error_json("simulated failure", "server_error", status)
    return await _send(request, rec, status, body, JSON)


async def _send_error(
    request: web.Request, rec: dict[str, Any], status: int, message: str, kind: str
) -> web.StreamResponse:
    return await _send(request, rec, status, p.error_json(message, kind, status), JSON)


async def _send(
    request: web.Request,
    rec: dict[str, Any],
    status: int,
    body: bytes,
    content_type: str | None,
    headers: dict[str, str] | None = None,
    tokens: int = 0,
) -> web.StreamResponse:
    """Write a whole response, timing it; ``tokens`` marks a non-streaming answer."""
    resp = web.StreamResponse(status=status, headers=headers)
    if content_type:
        resp.content_type = content_type
    resp.content_length = len(body)
    rec["status"] = status
    try:
        await resp.prepare(request)
        now = rec["headers_sent_at"] = perf_counter()
        if body:
            await resp.write(body)
        await resp.write_eof()
        if tokens:
            request.app[STATE].note_tokens(rec, now, (tokens,))
        rec["completed"] = status == 200
    except ConnectionError:
        rec["client_disconnected"] = True
    rec["done_at"] = perf_counter()
    return resp


async def _sleep_until(deadline: float) -> None:
    delay = deadline - perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def _unary(
    request: web.Request, cfg: SimConfig, job: p.Job, fault: str | None, rec: dict[str, Any]
) -> web.StreamResponse:
    """A non-streaming answer, sent whole when its last token would have been generated."""
    clock = request.app[STATE].clock
    events = len(token_events(cfg, job))
    t0 = first_token_delay(cfg, fault, job)
    first = rec["started_at"] + t0  # the first token's time (its tick, on the global clock)
    k0 = clock.first_tick(first) if cfg.decode_clock == "global" else 0

    # The batch at the start sets every step's length (step_ms_per_request).
    step_s = (cfg.itl_ms + cfg.step_ms_per_request * len(request.app[STATE].running)) / 1000.0

    def token_time(i: int) -> float:
        if cfg.decode_clock == "global":
            return clock.tick_time(k0 + i)
        return first + step_s * i

    rec["first_token_due"] = token_time(0)
    if fault in ("drop", "error_event"):
        # Strike when the fault_after-th token would have been generated.
        at = min(math.ceil(cfg.fault_after / cfg.tokens_per_chunk), events)
        await _sleep_until(token_time(max(at - 1, 0)))
        if fault == "error_event":
            msg, kind = "simulated failure", "server_error"
            return await _send_error(request, rec, 500, msg, kind)
        if request.transport is not None:
            request.transport.abort()
        rec["done_at"] = perf_counter()
        return web.Response()  # never reaches the client
    await _sleep_until(token_time(max(events - 1, 0)))
    if fault == "bad_json":
        resp = await _send(request, rec, 200, BAD_JSON, JSON)
        rec["completed"] = False
        return resp
    reasoning, content = _texts(cfg, job)
    if job.responses:
        body = p.responses_body(job, reasoning, content)
    elif job.messages:
        body = messages_body(job, reasoning, content)
    else:
        body = p.full_response(job, reasoning, content)
    if fault == "truncate":
        return await _truncated(request, rec, body)
    rec["finish_reason"] = job.finish_reason
    return await _send(request, rec, 200, body, JSON, tokens=job.completion_tokens)


def _texts(cfg: SimConfig, job: p.Job) -> tuple[str, str]:
    texts = p.token_texts(cfg.vocab, job.rid, job.completion_tokens)
    return "".join(texts[: job.reasoning_tokens]), "".join(texts[job.reasoning_tokens :])


async def _truncated(request: web.Request, rec: dict[str, Any], body: bytes) -> web.StreamResponse:
    """Half of the JSON body, then a clean chunked end."""
    resp = web.StreamResponse(status=200)
    resp.content_type = JSON
    rec["status"] = 200
    try:
        await resp.prepare(request)
        rec["headers_sent_at"] = perf_counter()
        await resp.write(body[: len(body) // 2])
        await resp.write_eof()
    except ConnectionError:
        rec["client_disconnected"] = True
    rec["done_at"] = perf_counter()
    return resp


async def _stream(
    request: web.Request, cfg: SimConfig, job: p.Job, fault: str | None, rec: dict[str, Any]
) -> web.StreamResponse:
    """An SSE stream following the plan: events at their due times, then the planned end."""
    state = request.app[STATE]
    plan = build_plan(cfg, job, fault)
    headers = {"Cache-Control": "no-cache"}
    if cfg.close_after_stream:
        headers["Keep-Alive"] = "timeout=5, max=100"  # and yet closed after the stream
    resp = web.StreamResponse(headers=headers)
    resp.content_type = "text/event-stream"
    rec["status"] = 200
    start = rec["started_at"]
    try:
        await resp.prepare(request)
        rec["headers_sent_at"] = perf_counter()
        pacer = _Pacer(resp, cfg)
        rec["first_token_due"] = start + first_token_delay(cfg, fault, job)
        if cfg.decode_clock == "global":
            await _on_global_clock(state, resp, cfg, job, fault, rec, plan, pacer)
        else:
            slow_s = cfg.step_ms_per_request / 1000.0
            late = 0.0  # what the batch's size added to the steps so far (step_ms_per_request)
            for w in plan.writes:
                if slow_s and w.token_events and rec["first_token_at"] is not None:
                    late += slow_s * len(state.running) * len(w.token_events)
                await pacer.wait(start + w.due + late, rec["first_token_at"] is None)
                now = perf_counter()
                await _write(resp, w.data, cfg)
                if w.token_events:
                    state.note_tokens(rec, now, w.token_events)
            await pacer.wait(start + plan.end_due + late, rec["first_token_at"] is None)
        if plan.abort:
            if request.transport is not None:
                request.transport.abort()
        else:
            await resp.write_eof()
            if cfg.close_after_stream and request.transport is not None:
                request.transport.close()  # after the buffered bytes: a FIN, as llama.cpp
        # A stream with a bad_json line is malformed even though it goes on to the end
        # (as in _unary): no client can take it for a complete answer.
        rec["completed"] = not plan.cut and fault != "bad_json"
        rec["finish_reason"] = None if plan.cut else job.finish_reason
    except ConnectionError:
        rec["client_disconnected"] = True
    rec["done_at"] = perf_counter()
    return resp


async def _on_global_clock(
    state: SimState,
    resp: web.StreamResponse,
    cfg: SimConfig,
    job: p.Job,
    fault: str | None,
    rec: dict[str, Any],
    plan: Any,
    pacer: _Pacer,
) -> None:
    """The plan's writes on the global decode clock: what is due before the first token at
    once, then write i (due t0 + i * itl) on tick k0 + i, k0 the first tick at or after
    start + t0. The clock's loop does the writing (``split_bytes`` does not apply)."""
    clock = state.clock
    t0 = first_token_delay(cfg, fault, job)
    itl = cfg.itl_ms / 1000.0
    k0 = clock.first_tick(rec["started_at"] + t0)
    rec["first_token_due"] = clock.tick_time(k0)
    ticked = []
    for w in plan.writes:
        if w.due < t0 - 1e-9:
            await resp.write(w.data)  # the role chunk, Responses' opening events
        else:
            ticked.append((k0 + round((w.due - t0) / itl), w.data, w.token_events))
    ticked.append((k0 + round(max(plan.end_due - t0, 0.0) / itl), b"", ()))  # the body's end
    if cfg.keepalive_ms > 0:
        await pacer.wait(clock.tick_time(k0) - itl / 2, True)
    await clock.run(resp, rec, ticked, eof=not plan.abort)


async def _write(resp: web.StreamResponse, data: bytes, cfg: SimConfig) -> None:
    """One write, or ``split_bytes`` pieces spaced by ``split_delay_ms`` (TCP_NODELAY is on)."""
    size = cfg.split_bytes
    if size <= 0 or len(data) <= size:
        await resp.write(data)
        return
    delay = cfg.split_delay_ms / 1000.0
    for i in range(0, len(data), size):
        if i and delay:
            await asyncio.sleep(delay)
        await resp.write(data[i : i + size])


class _Pacer:
    """Sleeps until each write is due, sending keep-alive comments before the first token."""

    __slots__ = ("_resp", "_interval", "_next", "_bytes")

    def __init__(self, resp: web.StreamResponse, cfg: SimConfig) -> None:
        self._resp = resp
        self._interval = cfg.keepalive_ms / 1000.0
        self._next = perf_counter() + self._interval
        self._bytes = keepalive_bytes(cfg)

    async def wait(self, deadline: float, keepalive: bool) -> None:
        keepalive = keepalive and self._interval > 0
        while True:
            now = perf_counter()
            if now >= deadline:
                return
            if not keepalive or self._next >= deadline:
                await asyncio.sleep(deadline - now)
                return
            if self._next > now:
                await asyncio.sleep(self._next - now)
            await self._resp.write(self._bytes)
            self._next += self._interval
