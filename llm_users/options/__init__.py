"""Options: each declared once (:mod:`.declare`), validated into one frozen :class:`Settings`.

``llm_users.options`` keeps the names it had as a module.
"""

from .settings import Secret, Settings, add_arguments

__all__ = ["Secret", "Settings", "add_arguments"]
