"""Server text made safe for where it is shown: a terminal (no control sequences) or a CSV
cell (no spreadsheet formula). See docs/reference/security.md."""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["TerminalSafeFilter", "csv_cell", "for_terminal"]

# C0 controls but tab and newline (ESC starts terminal sequences; CR and backspace overwrite
# what was printed), DEL, C1 controls (0x9b is a one-byte CSI), and the bidirectional
# overrides and isolates that make text read in another order than it is.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP's CSV injection list


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def for_terminal(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``), so it prints as
    the characters it holds and never moves the cursor, recolours or retitles a terminal."""
    return _CONTROL.sub(_escape, text)


def csv_cell(value: Any) -> str:
    """A CSV cell's text; one that a spreadsheet would read as a formula gets a leading ``'``
    (a number such as ``-1.5`` stays as it is)."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


class TerminalSafeFilter(logging.Filter):
    """Escapes control characters in every message of the logger it is added to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = for_terminal(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True
