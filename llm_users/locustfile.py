"""The locustfile bundled with the package: ``llm-users run`` loads it (``locust -f`` this file).

It defines the default user, :class:`~llm_users.LLMUser`, and registers the plugin's options
and reports. Your own locustfile can do the same, or subclass :class:`~llm_users.BaseLLMUser`.
"""

# Locust imports this file by path, with its folder first on sys.path while it runs: import
# only absolute ``llm_users`` names here (tests/unit/test_cli.py checks nothing else leaks in).
from locust import events

from llm_users.plugin.users import LLMUser
from llm_users.plugin.wiring import register

__all__ = ["LLMUser"]

register(events)
