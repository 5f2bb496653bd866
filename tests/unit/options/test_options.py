"""Options on Locust's parser, and the validated Settings built from them."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import orjson
import pytest
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments

from llm_users.errors import ConfigError
from llm_users.options.declare import GROUPS, declared
from llm_users.options.examples import EXAMPLES
from llm_users.options.settings import (
    SEED_SAMPLING,
    SEED_SYSTEM_PROMPT,
    Secret,
    Settings,
    add_arguments,
)
from tests.helpers import help_sections

KEY = "sk-test-0123456789abcdef"


def parser() -> Any:
    p = get_empty_argument_parser()
    setup_parser_arguments(p)
    add_arguments(p)
    return p


def parse(*args: str) -> argparse.Namespace:
    return parser().parse_args(list(args))


@pytest.fixture(scope="module")
def defaults() -> argparse.Namespace:
    return parse()


def opts(defaults: argparse.Namespace, **overrides: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(defaults), **overrides})


# -- the parser ----------------------------------------------------------------------------


def test_add_arguments_is_idempotent() -> None:
    p = parser()
    add_arguments(p)  # the web UI calls the hook again: no "conflicting option" error
    assert p.parse_args(["--max-tokens", "7"]).max_tokens == 7


def test_help_shows_every_option_once_under_its_groups_title(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Locust's own --help path, with the plugin's parser hook registered (as a locustfile
    or a wrapper registers it); the hook fires twice: nothing doubled."""
    import locust
    from locust.argument_parser import parse_locustfile_option

    monkeypatch.chdir(tmp_path)  # no locust.conf / pyproject.toml of the repository
    hook = locust.events.init_command_line_parser
    hook.add_listener(add_arguments)
    hook.add_listener(add_arguments)
    try:
        with pytest.raises(SystemExit) as exited:
            parse_locustfile_option(["--help"])
    finally:
        hook.remove_listener(add_arguments)
        hook.remove_listener(add_arguments)
    assert exited.value.code == 0
    text = capsys.readouterr().out
    sections = help_sections(text)
    options = list(declared(Settings))
    assert {o.group for _, o in options} == set(GROUPS)
    for _, o in options:
        words = sections[GROUPS[o.group]].replace(",", " ").split()  # "--stream, --no-stream"
        assert o.flag in words, (o.flag, GROUPS[o.group])
        shown = (f"  {o.flag} ", f"  {o.flag}\n", f"  {o.flag}, ")
        assert sum(text.count(form) for form in shown) == 1, o.flag
    # Moved out of the parser's own list (Locust titles it "Common options"), which keeps its own
    assert "--max-tokens" not in sections["Common options"].split()
    assert "--headless" in sections["Common options"].split()
    titles = list(sections)
    assert titles.index("User classes") < titles.index("LLM requests")  # after Locust's own
    assert [t for t in titles if t.startswith("LLM ")] == list(GROUPS.values())


def test_one_declaration_makes_flag_env_var_form_and_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = dict(declared(Settings))
    assert options["headers"].flag == "--header" and options["headers"].dest == "header"
    assert options["max_tokens"].env_var == "LOCUST_MAX_TOKENS"
    monkeypatch.setenv("LOCUST_MAX_TOKENS", "9")
    monkeypatch.setenv("LOCUST_STREAM_USAGE", "off")
    s = Settings.from_options(parse(), environ={})
    assert (s.max_tokens, s.stream_usage) == (9, False)
    web = {name for name, o in options.items() if o.web}
    assert "api_key" in web and "headers" not in web and "seed" not in web
    assert [name for name, o in options.items() if o.secret] == ["api_key"]
    assert "api_key" not in {f.name for f in dataclasses.fields(Settings) if f.repr}


def test_web_form_lists_every_web_option_with_the_key_masked_on_each_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """What Locust's `/` computes for the start form (it fires the parser hook each time)."""
    import locust
    from locust.env import Environment

    monkeypatch.chdir(tmp_path)  # no locust.conf / pyproject.toml of the repository
    monkeypatch.setattr("sys.argv", ["locust", "--api-key", KEY, "--max-tokens", "33"])
    locust.events.init_command_line_parser.add_listener(add_arguments)
    try:
        env = Environment(events=locust.events)
        env.create_local_runner()
        web_ui = env.create_web_ui("127.0.0.1", 0)
        client = web_ui.app.test_client()
        want = {o.dest for _, o in declared(Settings) if o.web}
        for _ in range(2):
            page = client.get("/")
            assert page.status_code == 200
            form = web_ui.template_args["extra_options"]
            ours = {k for k in form if k in {o.dest for _, o in declared(Settings)}}
            assert ours == want
            assert form["max_tokens"]["default_value"] == 33
            assert form["api_key"]["is_secret"] is True
            assert form["prompt_type"]["choices"] == sorted(["0", "1", "2", "short", "long",
                                                             "random"])  # fmt: skip
            assert KEY not in json.dumps(form) and KEY.encode() not in page.data
            assert b"max_tokens" in page.data and b"api_key" in page.data
    finally:
        locust.events.init_command_line_parser.remove_listener(add_arguments)


def test_settings_are_frozen_and_replace_sets_a_resolved_model(
    defaults: argparse.Namespace,
) -> None:
    s = Settings.from_options(defaults, environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.model = "m"  # type: ignore[misc]
    resolved = dataclasses.replace(s, model="m")
    assert resolved.model == "m" and s.model == "" and resolved.extra_body == s.extra_body
    assert defaults.model == ""  # nothing written back into the parsed options


def test_defaults_stream_and_leave_sampling_to_the_server(defaults: argparse.Namespace) -> None:
    s = Settings.from_options(defaults, environ={})
    assert s.prompt_type == "short"
    assert s.prompt_language == "en"
    assert s.max_tokens == 128
    assert s.stream is True and s.mode == "streaming"
    assert s.endpoint == "chat"
    assert s.system_prompt == SEED_SYSTEM_PROMPT == "You are a helpful assistant."
    assert s.extra_body == {}  # no temperature, no top_p: the server's defaults
    assert s.api_key == "" and s.request_headers() == ()
    assert s.stream_usage is True and s.preflight is True
    assert (s.first_token_timeout, s.request_timeout, s.connect_timeout) == (120.0, 600.0, 10.0)


def test_no_stream_and_the_original_scripts_sampling() -> None:
    s = Settings.from_options(parse("--no-stream", "--sampling", "original"), environ={})
    assert s.stream is False and s.mode == "non-streaming"
    assert s.extra_body == SEED_SAMPLING
    assert (s.extra_body["temperature"], s.extra_body["top_p"]) == (0.01, 0.3)
    assert Settings.from_options(parse("--stream"), environ={}).stream is True  # still accepted


@pytest.mark.parametrize(("text", "stream"), [("false", False), ("true", True)])
def test_stream_from_a_config_file(tmp_path: Any, text: str, stream: bool) -> None:
    conf = tmp_path / "run.conf"
    conf.write_text(f"stream = {text}\nsampling = original\n")
    s = Settings.from_options(parse("--config", str(conf)), environ={})
    assert s.stream is stream and s.extra_body == SEED_SAMPLING


def test_command_line_values() -> None:
    s = Settings.from_options(
        parse("--prompt-type", "2", "--stream", "--max-tokens", "0", "--endpoint", "completions",
              "--sampling", "none", "--header", "X-A: 1", "--header", "X-B:  two ",
              "--stream-usage", "off", "--requests-per-user", "10"),
        environ={},
    )  # fmt: skip
    assert s.prompt_type == "random"
    assert s.stream is True and s.mode == "streaming"
    assert s.max_tokens is None  # 0: not sent
    assert s.endpoint == "completions"
    assert s.extra_body == {}
    assert s.headers == (("X-A", "1"), ("X-B", "two"))
    assert s.stream_usage is False
    assert s.requests_per_user == 10


@pytest.mark.parametrize(("value", "kind"), [("0", "short"), ("1", "long"), ("2", "random"),
                                             ("long", "long")])  # fmt: skip
def test_prompt_types(defaults: argparse.Namespace, value: str, kind: str) -> None:
    assert Settings.from_options(opts(defaults, prompt_type=value), environ={}).prompt_type == kind


def test_extra_body_is_merged_over_the_original_sampling(defaults: argparse.Namespace) -> None:
    o = opts(defaults, sampling="original", extra_body='{"temperature": 0.7, "ignore_eos": true}')
    s = Settings.from_options(o, environ={})
    assert s.extra_body == {**SEED_SAMPLING, "temperature": 0.7, "ignore_eos": True}
    assert s.extra_body["top_p"] == 0.3


def test_a_single_header_string_from_an_environment_variable(defaults: argparse.Namespace) -> None:
    s = Settings.from_options(opts(defaults, header="X-Tenant: a"), environ={})
    assert s.headers == (("X-Tenant", "a"),)


@pytest.mark.parametrize("text", ["true", "1", "yes", "on", "TRUE"])
def test_true_strings(defaults: argparse.Namespace, text: str) -> None:
    assert Settings.from_options(opts(defaults, stream=text), environ={}).stream is True


@pytest.mark.parametrize("text", ["false", "0", "no", "off", ""])
def test_false_strings(defaults: argparse.Namespace, text: str) -> None:
    assert Settings.from_options(opts(defaults, stream=text), environ={}).stream is False


# -- every invalid value: ConfigError naming the option and the value ----------------------

INVALID = [
    ("max_tokens", "-1", "--max-tokens", "-1"),
    ("max_tokens", "abc", "--max-tokens", "abc"),
    ("max_tokens", "1.5", "--max-tokens", "1.5"),
    ("requests_per_user", -3, "--requests-per-user", "-3"),
    ("prompt_type", "3", "--prompt-type", "3"),
    ("prompt_type", "huge", "--prompt-type", "huge"),
    ("prompt_language", "fr", "--prompt-language", "fr"),
    ("endpoint", "moderations", "--endpoint", "moderations"),
    ("sampling", "greedy", "--sampling", "greedy"),
    ("stream_usage", "maybe", "--stream-usage", "maybe"),
    ("preflight", "sometimes", "--preflight", "sometimes"),
    ("extra_body", "{bad json", "--extra-body", "{bad json"),
    ("extra_body", "[1, 2]", "--extra-body", "[1, 2]"),
    ("extra_body", '"text"', "--extra-body", '"text"'),
    ("extra_body", "42", "--extra-body", "42"),
    ("header", ["NoColonHere"], "--header", "NoColonHere"),
    ("header", ["Bad Name: x"], "--header", "Bad Name: x"),
    ("header", [": no name"], "--header", ": no name"),
    ("stream", "maybe", "--stream", "maybe"),
    ("insecure", "2", "--insecure", "2"),
    ("print_requests", "nah", "--print-requests", "nah"),
    ("first_token_timeout", "0", "--first-token-timeout", "0"),
    ("first_token_timeout", -1.0, "--first-token-timeout", "-1.0"),
    ("request_timeout", "soon", "--request-timeout", "soon"),
    ("request_timeout", "nan", "--request-timeout", "nan"),
    ("connect_timeout", "-5", "--connect-timeout", "-5"),
    ("ca_bundle", "/nonexistent/ca.pem", "--ca-bundle", "/nonexistent/ca.pem"),
    ("request_rate", "-2", "--request-rate", "-2"),
    ("request_rate", "nan", "--request-rate", "nan"),
    ("request_rate", "fast", "--request-rate", "fast"),
    ("max_failing_seconds", "nan", "--max-failing-seconds", "nan"),
    ("arrivals", "burst", "--arrivals", "burst"),
    ("slo", "ttft=500", "--slo", "ttft=500"),
    ("slo", "ttft_ms=soon", "--slo", "soon"),
    ("slo", "tpot_ms=-1", "--slo", "-1"),
    ("slo_target", "150", "--slo-target", "150"),
    ("sweep", "1,x,4", "--sweep", "1,x,4"),
    ("sweep", "1,0", "--sweep", "1,0"),
    ("sweep", "1,2.5", "--sweep", "2.5"),
    ("input_tokens", "-10", "--input-tokens", "-10"),
    ("input_tokens_spread", "1.5", "--input-tokens-spread", "1.5"),
    ("dataset", "/nonexistent/prompts.jsonl", "--dataset", "/nonexistent/prompts.jsonl"),
    ("seed", "x1", "--seed", "'x1'"),
    ("seed", "-3", "--seed", "-3"),
    ("think_time", "-1", "--think-time must be >= 0", "'-1'"),
    ("think_time", "3-1", "--think-time range must go from low to high", "'3-1'"),
    ("think_time", "x", "--think-time must be seconds (2) or a range of seconds (1-3)", "'x'"),
    ("think_time", "1-inf", "--think-time must be a finite number", "'1-inf'"),
]


@pytest.mark.parametrize(("attr", "value", "option", "shown"), INVALID,
                         ids=[f"{a}={v!r}" for a, v, _, _ in INVALID])  # fmt: skip
def test_invalid_value_names_option_and_value(
    defaults: argparse.Namespace, attr: str, value: Any, option: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_options(opts(defaults, **{attr: value}), environ={})
    message = str(info.value)
    assert option in message
    assert shown in message


@pytest.mark.parametrize(("given", "bounds"), [("0", (0.0, 0.0)), ("2", (2.0, 2.0)),
                                              ("1-3", (1.0, 3.0)), (" 0.5 - 1.5 ", (0.5, 1.5)),
                                              ("1e-3", (0.001, 0.001))])  # fmt: skip
def test_think_time_is_seconds_or_a_range(
    defaults: argparse.Namespace, given: str, bounds: tuple[float, float]
) -> None:
    assert Settings().think_time == (0.0, 0.0)
    s = Settings.from_options(opts(defaults, think_time=given), environ={})
    assert s.think_time == bounds
    assert Settings.from_options(parse("--think-time", given), environ={}).think_time == bounds


def test_header_value_on_two_lines_names_the_option_and_the_header(
    defaults: argparse.Namespace,
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_options(opts(defaults, header=["X-Token: a\r\nInjected: b"]), environ={})
    assert "--header" in str(info.value) and "X-Token" in str(info.value)


def test_config_error_is_raised_before_anything_else(defaults: argparse.Namespace) -> None:
    # a ConfigError is an LLMUsersError, so callers can catch the package's errors at once
    from llm_users.errors import LLMUsersError

    with pytest.raises(LLMUsersError):
        Settings.from_options(opts(defaults, max_tokens="-1"), environ={})


# -- the API key ---------------------------------------------------------------------------


def test_openai_api_key_fallback_from_environ(defaults: argparse.Namespace) -> None:
    s = Settings.from_options(defaults, environ={"OPENAI_API_KEY": KEY})
    assert s.api_key == KEY
    assert s.request_headers() == (("Authorization", f"Bearer {KEY}"),)


def test_api_key_option_wins_over_the_environment(defaults: argparse.Namespace) -> None:
    o = opts(defaults, api_key=Secret("sk-option"))
    s = Settings.from_options(o, environ={"OPENAI_API_KEY": KEY})
    assert s.api_key == "sk-option"


def test_api_key_as_a_plain_string_works(defaults: argparse.Namespace) -> None:
    s = Settings.from_options(opts(defaults, api_key="sk-plain"), environ={})
    assert s.api_key == "sk-plain"


def test_environ_argument_replaces_os_environ(
    defaults: argparse.Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-os")
    assert Settings.from_options(defaults, environ={}).api_key == ""
    assert Settings.from_options(defaults).api_key == "sk-from-os"


def test_api_key_from_the_command_line_and_locust_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    o = parse("--api-key", KEY)
    assert isinstance(o.api_key, Secret)
    assert Settings.from_options(o, environ={}).api_key == KEY
    monkeypatch.setenv("LOCUST_API_KEY", "sk-locust-env")
    assert Settings.from_options(parse(), environ={}).api_key == "sk-locust-env"


def test_request_headers_put_authorization_first_then_extra_headers(
    defaults: argparse.Namespace,
) -> None:
    s = Settings.from_options(opts(defaults, header=["X-A: 1"]), environ={"OPENAI_API_KEY": KEY})
    assert s.request_headers() == (("Authorization", f"Bearer {KEY}"), ("X-A", "1"))


def test_messages_headers_send_the_key_as_x_api_key(defaults: argparse.Namespace) -> None:
    o = opts(defaults, endpoint="messages", header=["anthropic-version: 2025-01-01", "X-A: 1"])
    s = Settings.from_options(o, environ={"OPENAI_API_KEY": KEY})
    # --header replaces the endpoint's own header of the same name
    assert s.request_headers() == (
        ("x-api-key", KEY), ("anthropic-version", "2025-01-01"), ("X-A", "1"),
    )  # fmt: skip


def test_session_header_must_be_a_header_name(defaults: argparse.Namespace) -> None:
    s = Settings.from_options(opts(defaults, session_header=" x-session-id "), environ={})
    assert s.session_header == "x-session-id" and s.trace_context is True
    for bad in ("x session", "x:id", "x-sé"):
        with pytest.raises(ConfigError, match=f"--session-header must be .*{bad!r}"):
            Settings.from_options(opts(defaults, session_header=bad), environ={})


def test_messages_needs_max_tokens(defaults: argparse.Namespace) -> None:
    with pytest.raises(ConfigError, match="--endpoint messages needs --max-tokens"):
        Settings.from_options(opts(defaults, endpoint="messages", max_tokens="0"), environ={})


def test_settings_repr_never_contains_the_key(defaults: argparse.Namespace) -> None:
    s = Settings.from_options(defaults, environ={"OPENAI_API_KEY": KEY})
    assert KEY not in repr(s)
    assert KEY not in str(s)
    assert KEY in dict(s.request_headers())["Authorization"]


# -- Secret --------------------------------------------------------------------------------


def test_secret_serialises_as_empty() -> None:
    s = Secret("sk-x")
    assert json.dumps(s) == '""'
    assert json.dumps({"api_key": s}) == '{"api_key": ""}'
    assert orjson.dumps(s) == b'""'


def test_secret_prints_as_empty_and_repr_hides_it() -> None:
    s = Secret("sk-x")
    assert str(s) == "" and f"{s}" == "" and s == ""
    assert "sk-x" not in repr(s)
    assert repr(s) == "Secret('***')"
    assert repr(Secret("")) == "Secret('')"


def test_secret_value_keeps_it() -> None:
    assert Secret("sk-x").value == "sk-x"
    assert Secret(Secret("sk-x")).value == "sk-x"  # argparse may convert a default again
    assert Secret().value == "" and Secret(None).value == ""


def test_seed_gives_each_stream_and_worker_its_own_repeatable_seed(
    defaults: argparse.Namespace,
) -> None:
    s = Settings.from_options(opts(defaults, seed="7"), environ={})
    again = Settings.from_options(opts(defaults, seed=" 7 "), environ={})
    other = Settings.from_options(opts(defaults, seed="8"), environ={})
    assert s.seed == 7
    assert s.seed_for("arrivals", 0) == again.seed_for("arrivals", 0)
    seeds = {
        s.seed_for("arrivals", 0),
        s.seed_for("arrivals", 1),
        s.seed_for("prompts", 0),
        other.seed_for("arrivals", 0),
    }
    assert len(seeds) == 4 and None not in seeds


def test_without_seed_every_draw_is_fresh(defaults: argparse.Namespace) -> None:
    s = Settings.from_options(defaults, environ={})
    assert s.seed is None and s.seed_for("arrivals", 3) is None


def test_docs_have_every_option_under_its_group_with_an_example() -> None:
    from pathlib import Path

    page = Path(__file__).parents[3] / "docs" / "reference" / "options-by-example.md"
    rows: dict[str, list[list[str]]] = {}
    for section in page.read_text().split("\n## ")[1:]:
        heading, _, body = section.partition("\n")
        rows[heading] = [
            [c.strip() for c in line.strip("|").split(" | ")]
            for line in body.splitlines()
            if line.startswith("| `-")
        ]
    want = [title.removeprefix("LLM ").capitalize() for title in GROUPS.values()]
    assert list(rows) == want
    for _, o in declared(Settings):
        heading = GROUPS[o.group].removeprefix("LLM ").capitalize()
        mine = [r for r in rows[heading] if r[0].split("`")[1].split()[0] == o.flag]
        assert len(mine) == 1, (o.flag, heading)
        assert o.flag in EXAMPLES, (o.flag, "no example in options/examples.py")
        # The page shows the declared example (the one `llm-users options` prints) first.
        assert mine[0][-1].startswith(f"`{EXAMPLES[o.flag]}`"), (o.flag, mine[0][-1])
