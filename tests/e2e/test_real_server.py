"""The plugin, unchanged, against a real third-party server: Hugging Face `transformers serve`.

A tiny random-weight Llama and its tokenizer are built locally (no download) and served on
the CPU. This server differs from the OpenAI reference in ways the plugin must handle in
general terms: it never sends `data: [DONE]` (a finish_reason then a clean end of the body
is a complete stream), it puts usage in the last content event rather than a usage-only
chunk, and its first chunk is role-only. See tests/realserver/FINDINGS.md.
"""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from tests.helpers import run_headless
from tests.realserver.server import TransformersServe, ensure_tiny_model

pytestmark = [pytest.mark.e2e, pytest.mark.realserver]

MAX_TOKENS = 24  # the tiny model never emits EOS: every answer is exactly max_tokens long


@pytest.fixture(scope="module")
def server():
    if importlib.util.find_spec("torch") is None:
        reason = "no torch in this venv: scripts/install-realserver.sh found no CPU build"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI requires the real server: {reason}", pytrace=False)
        pytest.skip(reason)
    model_dir = ensure_tiny_model()
    with TransformersServe(model_dir) as srv:
        yield srv, model_dir


def _run(srv, tmp_path, *args: str) -> dict:
    """The run's summary JSON, with its per-request records (``--records``) under "rows"."""
    out, records = tmp_path / "summary.json", tmp_path / "records.jsonl"
    proc = run_headless(
        srv.base_url,
        3,
        "--requests-per-user",
        "3",
        "--max-tokens",
        str(MAX_TOKENS),
        "--summary-json",
        str(out),
        "--records",
        str(records),
        "--stop-timeout",
        "30",
        *args,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    summary["rows"] = [json.loads(line) for line in records.read_text().splitlines()]
    return summary


def _check_follow_tokens(s: dict) -> None:
    """Follow tokens = the tokens after the first token EVENT (docs: definitions), per request:
    a loaded server may put two tokens in one chunk, the first one included, so the
    expectation comes from each request's own record, never from one token per chunk."""
    rows = s["rows"]
    assert len(rows) == 9 and all(r["ok"] for r in rows)
    for r in rows:
        assert r["usage_completion_tokens"] == MAX_TOKENS  # the server's own count
        assert 1 <= r["first_event_tokens"] <= MAX_TOKENS - r["token_events"] + 1
        assert r["follow_tokens"] == MAX_TOKENS - r["first_event_tokens"]
        assert 1 <= r["token_events"] <= MAX_TOKENS
    mean = sum(r["follow_tokens"] for r in rows) / len(rows)
    assert s["average_follow_tokens"] == pytest.approx(mean)


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_streaming_counts_match_the_servers_usage(server, tmp_path, endpoint):
    srv, model_dir = server
    s = _run(srv, tmp_path, "--stream", "--endpoint", endpoint, "--tokenizer", str(model_dir))
    assert s["requests"] == 9 and s["failures"] == 0
    assert s["model"] == srv.model_id  # picked from GET /v1/models
    # every generated token counted by the tokenizer equals the server's own usage count
    assert s["token_count_check"]["compared"] == 9
    assert s["token_count_check"]["max_abs_diff"] == 0
    assert s["output_tokens"] == 9 * MAX_TOKENS
    _check_follow_tokens(s)
    # one gap per token-carrying event after the first, whatever each event carried
    itl_gaps = sum(r["token_events"] - 1 for r in s["rows"])
    assert s["ttft_ms"]["count"] == 9 and s["itl_ms"]["count"] == itl_gaps


def test_streaming_without_tokenizer_uses_usage(server, tmp_path):
    srv, _ = server
    s = _run(srv, tmp_path, "--stream")
    assert s["requests"] == 9 and s["failures"] == 0
    assert s["follow_tokens_source"] == {"usage": 9}
    _check_follow_tokens(s)
    for r in s["rows"]:  # usage gives the total only: the first event's share is the mean
        assert r["first_event_tokens"] == max(1, round(MAX_TOKENS / r["token_events"]))


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_non_streaming_total_tokens_from_usage(server, tmp_path, endpoint):
    srv, _ = server
    s = _run(srv, tmp_path, "--endpoint", endpoint, "--no-stream")
    assert s["mode"] == "non-streaming" and s["requests"] == 9 and s["failures"] == 0
    assert s["output_tokens"] == 9 * MAX_TOKENS
    # total = prompt + completion, as the seed counts it; the prompt is the same every time
    assert s["average_tokens"] > MAX_TOKENS and s["average_tokens"] == int(s["average_tokens"])


def test_unknown_model_is_refused_before_the_test(server):
    srv, _ = server
    proc = run_headless(
        srv.base_url,
        1,
        "--model",
        "no-such-model",
        "--requests-per-user",
        "1",
        timeout=60,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("llm-users: error: the server does not know --model 'no-such-model'")
    assert "Traceback" not in proc.stderr
