"""Locust users for OpenAI-compatible LLM servers: TTFT, ITL, TPOT and E2E, exact and distributed.

In a locustfile::

    from locust import events
    from llm_users import LLMUser, register

    register(events)
"""

from .aggregate import Aggregate
from .errors import ConfigError, LLMUsersError, PreflightError
from .histogram import Histogram
from .metrics import RequestResult
from .options import Settings, add_arguments
from .plugin import LLMPlugin, plugin_of, register, setup
from .record import FailureKind, RequestRecord
from .sse import SSEEvent, SSEParser
from .users import BaseLLMUser, LLMUser

__all__ = [
    "Aggregate",
    "BaseLLMUser",
    "ConfigError",
    "FailureKind",
    "Histogram",
    "LLMPlugin",
    "LLMUser",
    "LLMUsersError",
    "PreflightError",
    "RequestRecord",
    "RequestResult",
    "SSEEvent",
    "SSEParser",
    "Settings",
    "add_arguments",
    "plugin_of",
    "register",
    "setup",
]
__version__ = "0.1.0"
