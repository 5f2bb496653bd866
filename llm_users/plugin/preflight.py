"""A quick check, before the test, that the host is an OpenAI-compatible server.

GET /v1/models must answer with a model list. It also picks the default model (the first
listed) and, when a --model is given that the list lacks, sends one tiny request so the
server's own "model not found" message can be shown before the test starts.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from typing import Any

import gevent
from gevent import ssl as gssl

from ..errors import ConfigError
from ..options.settings import Settings
from ..wire.endpoints import ENDPOINTS, error_message, error_text
from ..wire.http import Origin

__all__ = ["preflight"]

log = logging.getLogger("llm_users")
TIMEOUT_S = 10.0  # each read or connect
# The whole call, however the server drips its answer (a byte every few seconds would
# otherwise reset the per-read timeout forever and hang the tool before the test).
DEADLINE_S = 20.0
MAX_BODY = 1 << 20  # a model list of thousands of models is a few hundred KiB


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: it would carry the Authorization header to another origin."""

    def redirect_request(self, *_args: Any, **_kw: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def _call(
    origin: Origin,
    settings: Settings,
    ssl_context: gssl.SSLContext | None,
    path: str,
    body: dict[str, Any] | None = None,
) -> tuple[int, bytes]:
    url = f"{origin}{path}"
    headers = dict(settings.request_headers())
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    # No proxies from the environment: the load itself goes straight to the host too.
    handlers: list[Any] = [urllib.request.ProxyHandler({}), _NoRedirect()]
    if ssl_context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
    opener = urllib.request.build_opener(*handlers)
    method = req.get_method()
    try:
        with gevent.Timeout(DEADLINE_S):
            try:
                with opener.open(req, timeout=TIMEOUT_S) as resp:
                    return resp.status, resp.read(MAX_BODY)
            except urllib.error.HTTPError as exc:
                if 300 <= exc.code < 400:
                    where = str(exc.headers.get("Location", ""))[:200] if exc.headers else ""
                    raise ConfigError(
                        f"{method} {url} answered a redirect (HTTP {exc.code}) to "
                        f"{where or 'nowhere'!r}; redirects are never followed (the API key "
                        "would go with them): give --host the server's own address"
                    ) from None
                return exc.code, exc.read(1 << 16) if exc.fp else b""
    except gevent.Timeout:
        raise ConfigError(
            f"{method} {url} did not answer in full within {DEADLINE_S:.0f} s; check --host, "
            "or skip this check with --preflight off"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"[:200]
        raise ConfigError(
            f"cannot reach the server at {origin} ({reason}); check --host, or skip this "
            "check with --preflight off"
        ) from None


def _message(raw: bytes) -> str:
    return error_text(raw, limit=160)


def preflight(origin: Origin, settings: Settings, ssl_context: gssl.SSLContext | None) -> str:
    """Check the server; return the model name to use. Raises ConfigError with the reason."""
    status, raw = _call(origin, settings, ssl_context, "/v1/models")
    if status in (401, 403):
        raise ConfigError(f"the server refused the API key (HTTP {status}): {_message(raw)}")
    models: list[str] = []
    if status == 200:
        try:
            data = json.loads(raw)
            models = [str(m["id"]) for m in data["data"] if isinstance(m, dict) and "id" in m]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise ConfigError(
                f"{origin} does not look OpenAI-compatible: GET /v1/models answered "
                f"{_message(raw)[:120]!r}"
            ) from None
    elif status == 404:
        log.warning(
            "llm-users: %s has no GET /v1/models; checking %s with one request",
            origin,
            settings.endpoint,
        )
    else:
        raise ConfigError(f"GET {origin}/v1/models failed with HTTP {status}: {_message(raw)}")

    model = settings.model or (models[0] if models else "")
    unknown = bool(settings.model and models and settings.model not in models)
    if status == 200 and not unknown:
        return model
    # No model list, or a --model the list lacks: one tiny real request tells.
    ep = ENDPOINTS[settings.endpoint]
    body = ep.body(
        "ping",
        model=model,
        max_tokens=ep.min_output_tokens,
        stream=False,
        stream_usage=False,
        system_prompt=None,
        extra={},
    )
    status, raw = _call(origin, settings, ssl_context, ep.path, body)
    if status == 200:
        try:
            obj = json.loads(raw)
            ok = isinstance(obj, dict) and error_message(obj) is None
            if ok:
                ep.on_full(obj)  # the endpoint's own shape (choices, or output)
        except (ValueError, AttributeError, RecursionError):  # not JSON, BadShape, too deep
            ok = False
        if ok:
            return model
        raise ConfigError(
            f"{origin} does not look OpenAI-compatible: POST {ep.path} answered "
            f"{_message(raw)[:120]!r}"
        )
    if unknown and status in (400, 404, 422):
        raise ConfigError(
            f"the server does not know --model {settings.model!r} (HTTP {status}): "
            f"{_message(raw)}; it lists: {', '.join(models[:5])}"
        )
    if status in (401, 403):
        raise ConfigError(f"the server refused the API key (HTTP {status}): {_message(raw)}")
    raise ConfigError(
        f"{origin} does not look OpenAI-compatible: POST {ep.path} answered HTTP {status}: "
        f"{_message(raw)[:160]} (--preflight off skips this check)"
    )
