"""The API key and the one origin it may go to: --host as given at start.

A host typed in the web form later gets the start-up key only if it is the same origin
(scheme, host, port); another host gets a key only when the form gives one too. Without a
--host at start, the start-up key goes nowhere from the form. Redirects are never followed
with it (preflight.py; the client follows none).
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ConfigError
from ..wire.http import Origin

__all__ = ["KeyPin"]

log = logging.getLogger("llm_users")


class KeyPin:
    def __init__(self, key: str = "", host: str | None = None) -> None:
        self.key = key
        self.origin = origin_or_none(host)

    def for_host(self, host: str | None) -> str:
        """The start-up key if ``host`` is its origin, else "" (the form may give its own)."""
        origin = origin_or_none(host)
        if not self.key or self.origin is None or origin is None:
            return ""
        return self.key if origin.base == self.origin.base else ""

    def warn_web_ui(self, opts: Any) -> None:
        """Say where the key may go, and who can start runs with it."""
        if not self.key:
            return
        if self.origin is None:
            log.warning(
                "llm-users: the API key is sent only to --host, and none was given: a host "
                "typed in the web form gets no key unless the form gives one too"
            )
        everywhere = (getattr(opts, "web_host", "") or "*") in ("*", "0.0.0.0", "::")
        if everywhere and not getattr(opts, "web_login", False):
            log.warning(
                "llm-users: the web UI listens on every interface, and anyone who reaches it "
                "can start runs against %s with your API key: --web-host 127.0.0.1 keeps it "
                "to this machine (or use --web-login)",
                self.origin or "--host",
            )


def origin_or_none(host: str | None) -> Origin | None:
    try:
        return Origin.parse(host) if host else None
    except ConfigError:
        return None
