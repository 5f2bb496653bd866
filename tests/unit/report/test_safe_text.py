"""Server text shown on a terminal has no control characters; CSV cells hold no formula."""

from __future__ import annotations

import csv
import io
import logging
from types import SimpleNamespace

import pytest

from llm_users.report.safe_text import TerminalSafeFilter, csv_cell, for_terminal
from llm_users.webui.tab import LLMWebView

HOSTILE = "bad\x1b]0;owned\x07\x1b[2J\rgone\x9b31m\u202eevil\x00"


def test_control_characters_are_shown_as_escapes():
    safe = for_terminal(HOSTILE + "\ttab\nnext line")
    assert safe == ("bad\\x1b]0;owned\\x07\\x1b[2J\\x0dgone\\x9b31m\\u202eevil\\x00"
                    "\ttab\nnext line")  # fmt: skip
    assert all(c.isprintable() or c in "\t\n" for c in safe)
    assert for_terminal("plain text, é ü 中文") == "plain text, é ü 中文"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-1.5", "-1.5"),  # a plain negative number stays readable
        ("+3", "+3"),
        (-7, "-7"),
        (None, ""),
        ("http_500", "http_500"),
    ],
)
def test_csv_cells_hold_no_formula(value, cell):
    assert csv_cell(value) == cell


def test_the_summary_csv_neutralises_server_strings():
    summary = {"failure_examples": {"http_500": "=cmd()"}, "delta": -3.5, "model": "@x"}
    view = SimpleNamespace(summary=lambda: summary)
    body = LLMWebView.summary_csv(view).get_data(as_text=True)  # type: ignore[arg-type]
    rows = dict(csv.reader(io.StringIO(body)))
    assert rows["failure_examples.http_500"] == "'=cmd()"
    assert rows["delta"] == "-3.5" and rows["model"] == "'@x"


def test_log_lines_are_escaped(caplog):
    log = logging.getLogger("llm_users.test_safe_text")
    log.addFilter(TerminalSafeFilter())
    with caplog.at_level(logging.WARNING, logger=log.name):
        log.warning("server said %s", "\x1b[31mred")
    assert caplog.records[0].getMessage() == "server said \\x1b[31mred"
