"""The composition root inside Locust: the plugin's wiring, the users, the run context and
the parts it wires (accounting, sink, control, warm-up, distributed links, preflight, the
server watch, the end of a run).

``llm_users.plugin`` keeps the names it had as a module; they load on first use (Locust
monkey-patches the interpreter when imported).
"""

from __future__ import annotations

import importlib
from typing import Any

_MOVED = {"LLMPlugin", "plugin_of", "register", "setup"}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module 'llm_users.plugin' has no attribute {name!r}")
    return getattr(importlib.import_module(".wiring", __name__), name)
