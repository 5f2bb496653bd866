"""The capacity search's place in the exit code."""

from __future__ import annotations

from llm_users.plugin.finish import EXIT_SLO, exit_code


def test_exit_code_says_whether_any_load_met_the_slo():
    missed_run = {"goodput": {"percent": 10.0}}
    assert exit_code({**missed_run, "search": {"met_slo": True}}, 90.0, False) == 0
    assert exit_code({**missed_run, "search": {"met_slo": False}}, 90.0, False) == EXIT_SLO
    assert exit_code({"search": {"met_slo": True}}, 90.0, True) == 4  # aborted wins
