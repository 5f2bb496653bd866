"""The project's exceptions: configuration problems are reported in one line, before a test."""

from __future__ import annotations

__all__ = ["ConfigError", "LLMUsersError", "PreflightError"]


class LLMUsersError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(LLMUsersError):
    """An option, file or environment value is unusable; the message names it and the value."""


class PreflightError(LLMUsersError):
    """The server did not answer the pre-test check as an OpenAI-compatible server would."""
