"""Load-test an OpenAI-compatible LLM server: see README.md, or `locust -f locustfile.py --help`.

The same as the package's bundled locustfile (``llm-users run``), for use from the repository.
"""

from llm_users.locustfile import LLMUser

__all__ = ["LLMUser"]
