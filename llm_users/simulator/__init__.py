"""A simulated OpenAI-compatible LLM server with exact ground truth, for tests and benchmarks.

Exports resolve lazily: importing ``SimulatorProcess`` loads neither aiohttp nor tokenizers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import SimConfig
    from .process import SimulatorProcess
    from .tokenizer import build_tokenizer, save_tokenizer

__all__ = ["SimConfig", "SimulatorProcess", "build_tokenizer", "save_tokenizer"]

_HOMES = {
    "SimConfig": ".config",
    "SimulatorProcess": ".process",
    "build_tokenizer": ".tokenizer",
    "save_tokenizer": ".tokenizer",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOMES[name], __name__), name)
