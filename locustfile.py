"""Load-test an OpenAI-compatible LLM server: every option is in README.md (Options)."""

from locust import events

from llm_users import LLMUser, register

__all__ = ["LLMUser"]

register(events)
