"""The start form's checks and order, and the LLM tab's rows (webui/tab.py), without a browser."""

from __future__ import annotations

from llm_users.options.declare import GROUPS, declared
from llm_users.options.settings import Settings
from llm_users.webui.tab import FORM_FIRST, form_error, form_order, table_rows
from tests.helpers import parse_options

FORM = {"user_count": "1", "spawn_rate": "1", "host": "http://127.0.0.1:1", "api_key": ""}


def test_a_value_locust_cannot_convert_gets_the_command_lines_message() -> None:
    opts = parse_options()
    assert form_error(opts, {**FORM, "max_tokens": "abc"}) == (
        "--max-tokens must be a whole number, got 'abc'"
    )
    assert form_error(opts, {**FORM, "slo_target": "150"}) == (
        "--slo-target is a percentage (0-100), got 150"
    )
    assert opts.max_tokens == 128 and opts.slo_target == 0.0  # the options are not touched


def test_cross_checks_and_parsed_values_are_the_command_lines() -> None:
    opts = parse_options()
    assert form_error(opts, {**FORM, "max_tokens": "64", "stream": "false"}) is None
    assert "needs --slo" in (form_error(opts, {**FORM, "slo_target": "90"}) or "")
    message = form_error(opts, {**FORM, "extra_body": "{nope"}) or ""
    assert message.startswith("--extra-body is not valid JSON") and "\n" not in message
    assert "--slo must look like" in (form_error(opts, {**FORM, "slo": "ttft=5"}) or "")
    # an option given on the command line counts with the form's values
    assert "--input-tokens 8 needs --tokenizer" in (
        form_error(parse_options("--input-tokens", "8"), FORM) or ""
    )


def test_a_locustfiles_own_option_is_checked_by_its_type() -> None:
    opts = parse_options()
    opts.my_count = 3  # as a locustfile's own int option arrives
    assert form_error(opts, {**FORM, "my_count": "x1"}) == "my count: 'x1' is not a valid int"
    assert form_error(opts, {**FORM, "my_count": "4"}) is None


def test_the_form_lists_request_options_first_then_groups_as_help_does() -> None:
    extra = {o.dest: {} for _n, o in sorted(declared(Settings), key=lambda x: x[0]) if o.web}
    extra["a_locustfile_option"] = {}
    order = list(form_order(extra))
    assert order[: len(FORM_FIRST)] == list(FORM_FIRST)
    group_of = {o.dest: o.group for _n, o in declared(Settings)}
    groups = [group_of[d] for d in order[len(FORM_FIRST) : -1]]
    ranks = [list(GROUPS).index(g) for g in groups]
    assert ranks == sorted(ranks)  # one block per group, in --help's order
    assert order[-1] == "a_locustfile_option"


def test_a_setup_error_is_a_row_of_the_tab() -> None:
    rows = table_rows({}, "idle", setup_error="--tokenizer folder '/x' does not exist")
    assert rows == [
        {"figure": "Status", "value": "idle"},
        {"figure": "Setup error", "value": "--tokenizer folder '/x' does not exist"},
    ]
    assert [r["figure"] for r in table_rows({}, "idle")] == ["Status"]
