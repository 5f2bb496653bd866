"""The options recorded in the summary JSON, and the command line made back from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_users.errors import ConfigError
from llm_users.options.recorded import (
    REDACTED,
    from_summary,
    recorded_options,
    split_from_summary,
    to_args,
)
from llm_users.options.settings import Secret
from tests.helpers import parse_options

KEY = "sk-test-0123456789abcdef"
GIVEN = (
    "--no-stream", "--max-tokens", "32", "--endpoint", "completions", "--sampling", "original",
    "--extra-body", '{"ignore_eos": true}', "--header", "X-Tenant: a", "--header",
    f"Authorization: Bearer {KEY}", "--turns", "all", "--think-time", "1-3", "--insecure",
    "--prompt-type", "long", "-u", "3", "-r", "2", "-t", "7s",
)  # fmt: skip


def test_every_option_is_recorded_as_given_and_secrets_are_not() -> None:
    opts = parse_options(*GIVEN, "--api-key", KEY)
    rec = recorded_options(opts)
    assert KEY not in json.dumps(rec)
    assert rec["api_key"] == REDACTED
    assert rec["header"] == ["X-Tenant: a", f"Authorization: {REDACTED}"]
    assert rec["stream"] is False and rec["max_tokens"] == 32 and rec["turns"] == "all"
    assert rec["sampling"] == "original" and rec["think_time"] == "1-3"
    assert (rec["num_users"], rec["spawn_rate"], rec["run_time"]) == (3, 2, 7)
    assert recorded_options(parse_options())["api_key"] == ""


def test_the_recorded_options_give_the_same_options_again() -> None:
    rec = recorded_options(parse_options(*GIVEN, "--api-key", KEY))
    args = to_args(rec)
    assert KEY not in " ".join(args) and REDACTED not in " ".join(args)
    again = recorded_options(parse_options(*args))
    # the same, but for the secrets, which come from the environment again
    assert {k: v for k, v in again.items() if k not in ("api_key", "header")} == {
        k: v for k, v in rec.items() if k not in ("api_key", "header")
    }
    assert again["header"] == ["X-Tenant: a"] and again["api_key"] == ""
    assert "--no-stream" in args and "--insecure" in args
    assert to_args(recorded_options(parse_options())) == ["--headless"]  # defaults: nothing


def test_from_summary_puts_the_host_first_and_later_args_win(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    rec = recorded_options(parse_options("--max-tokens", "32"))
    path.write_text(json.dumps({"host": "http://127.0.0.1:9", "options": rec}))
    args = from_summary(str(path))
    assert args[:2] == ["--host", "http://127.0.0.1:9"] and "--max-tokens=32" in args
    assert parse_options(*args, "--max-tokens", "200").max_tokens == 200


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), ("{", "is not JSON"), ('{"mode": "streaming"}', "records no options")],
)
def test_a_bad_summary_is_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "s.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        from_summary(str(path))


def test_split_from_summary() -> None:
    assert split_from_summary(["-u", "2", "--from-summary", "a.json", "-t", "1s"]) == (
        "a.json",
        ["-u", "2", "-t", "1s"],
    )
    assert split_from_summary(["--from-summary=b.json"]) == ("b.json", [])
    assert split_from_summary(["-u", "2"]) == (None, ["-u", "2"])
    with pytest.raises(ConfigError):
        split_from_summary(["--from-summary"])


def test_a_secret_object_is_recorded_redacted() -> None:
    opts = parse_options()
    opts.api_key = Secret(KEY)
    assert recorded_options(opts)["api_key"] == REDACTED
