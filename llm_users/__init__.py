"""Locust users for OpenAI-compatible LLM servers: TTFT, ITL, TPOT and E2E, exact and distributed.

In a locustfile::

    from locust import events
    from llm_users import LLMUser, register

    register(events)

Names are imported on first use, so that ``llm_users.simulator`` (an asyncio server) can be
used without importing Locust, which monkey-patches the interpreter with gevent.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Aggregate": ".measure.aggregate",
    "BaseLLMUser": ".plugin.users",
    "ConfigError": ".errors",
    "FailureKind": ".record",
    "LLMEvents": ".plugin.events",
    "Histogram": ".measure.histogram",
    "LLMPlugin": ".plugin.wiring",
    "LLMUser": ".plugin.users",
    "LLMUsersError": ".errors",
    "PreflightError": ".errors",
    "RequestRecord": ".record",
    "RequestResult": ".measure.per_request",
    "SSEEvent": ".wire.sse",
    "SSEParser": ".wire.sse",
    "Settings": ".options.settings",
    "add_arguments": ".options.settings",
    "plugin_of": ".plugin.wiring",
    "register": ".plugin.wiring",
    "setup": ".plugin.wiring",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_users' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
