"""Load-test an OpenAI-compatible LLM server: see README.md, or `locust -f locustfile.py --help`."""

from locust import events

from llm_users import LLMUser, register

__all__ = ["LLMUser"]

register(events)
