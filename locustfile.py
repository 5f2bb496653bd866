"""Load-test an OpenAI-compatible LLM server: every option is in README.md (Options).

The same as the package's bundled locustfile (``llm-users run``), for use from the repository.
"""

from llm_users.locustfile import LLMUser

__all__ = ["LLMUser"]
