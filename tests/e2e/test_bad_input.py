"""Bad input is refused before the test starts: one line naming the problem, exit code 2."""

from __future__ import annotations

import http.server
import threading

import pytest

from tests.helpers import run_headless

pytestmark = pytest.mark.e2e


def _refused(*args: str, host: str) -> str:
    proc = run_headless(host, 1, "--requests-per-user", "1", *args, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "/v1/chat/completions" not in proc.stdout  # no request was sent, no stats table
    return errors[0]


@pytest.fixture(scope="module")
def sim_url():
    from llm_users.simulator import SimulatorProcess

    with SimulatorProcess(ttft_ms=1, itl_ms=1, output_tokens=4) as sim:
        yield sim.url


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--prompt-type", "7"], "argument --prompt-type: invalid choice: '7'"),
        (["--requests-per-user", "-1"], "--requests-per-user must be >= 0, got -1"),
        (["--max-tokens", "-5"], "--max-tokens must be >= 0, got -5"),
        (["--extra-body", "{bad"], "--extra-body is not valid JSON"),
        (["--extra-body", "[1, 2]"], "--extra-body must be a JSON object, got '[1, 2]'"),
        (["--slo", "ttft=5"], "--slo must look like ttft_ms=500"),
        (["--slo", "ttft_ms=fast"], "--slo ttft_ms needs a number of ms, got 'fast'"),
        (["--slo-target", "150", "--slo", "ttft_ms=5"], "--slo-target is a percentage"),
        (["--request-rate", "-2"], "--request-rate must be >= 0"),
        (
            ["--tokenizer", "/no/such/tokenizer"],
            "--tokenizer folder '/no/such/tokenizer' does not exist",
        ),
        (["--dataset", "/no/such/file.jsonl"], "--dataset file not found: '/no/such/file.jsonl'"),
        (["--header", "NoColon"], "--header must look like 'Name: value', got 'NoColon'"),
        (["--input-tokens", "10"], "--input-tokens 10 needs --tokenizer"),
        (["--max-event-bytes", "0"], "--max-event-bytes must be a size in bytes > 0"),
        (["--max-response-bytes", "lots"], "--max-response-bytes must be a size in bytes > 0"),
        (
            ["--turns", "3", "--endpoint", "completions"],
            "--turns 3 needs --endpoint chat (a conversation is a list of chat messages), "
            "got --endpoint completions",
        ),
        (
            ["--model", "not-a-model"],
            "the server does not know --model 'not-a-model' (HTTP 404): "
            "The model `not-a-model` does not exist.",
        ),
    ],
)
def test_bad_options(sim_url, args, expected):
    assert expected in _refused(*args, host=sim_url)


def test_malformed_dataset_names_the_line(sim_url, tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "ok too"}\n{"prompt": \n')
    line = _refused("--dataset", str(path), host=sim_url)
    assert f"{path}:3" in line or "prompts.jsonl:3" in line


def test_conversation_without_a_user_turn_names_the_line(sim_url, tmp_path):
    path = tmp_path / "conv.jsonl"
    path.write_text(
        '{"turns": ["hi"]}\n{"messages": [{"role": "system", "content": "x"}, '
        '{"role": "assistant", "content": "y"}]}\n'
    )
    line = _refused("--dataset", str(path), "--turns", "all", host=sim_url)
    assert f"{path}:2: no user turn in this conversation (it has: system, assistant)" in line


def test_unloadable_tokenizer_folder(sim_url, tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    line = _refused("--tokenizer", str(tmp_path), host=sim_url)
    assert f"--tokenizer folder {str(tmp_path)!r} cannot be loaded" in line


def test_unreachable_host():
    line = _refused(host="http://127.0.0.1:1")
    assert "cannot reach the server at http://127.0.0.1:1" in line and "refused" in line


def test_bad_host_url():
    assert "--host must be an http:// or https:// URL" in _refused(host="ftp://example.invalid")


def test_not_openai_compatible():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        line = _refused(host=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert "does not look OpenAI-compatible: POST /v1/chat/completions answered HTTP 501" in line
    assert "<" not in line  # the HTML error page is reduced to its words


def test_a_given_server_metrics_url_is_checked_before_the_test(sim_url):
    line = _refused("--server-metrics", "http://127.0.0.1:1/metrics", host=sim_url)
    assert "--server-metrics 'http://127.0.0.1:1/metrics' cannot be read" in line
    # the simulator's own /metrics is fine: the same check lets the run go
    proc = run_headless(sim_url, 1, "--requests-per-user", "1", "--server-metrics",
                        sim_url + "/metrics", timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_2_gib_dataset_line_is_one_line_not_a_memory_error(sim_url, tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.write(b"a prompt\n")
        f.truncate(2 << 30)  # sparse: 2 GiB of zero bytes and no newline, no disk used
    line = _refused("--dataset", str(path), host=sim_url)
    assert f"{path}:2: line longer than 32 MiB" in line


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ('"timestamp": 1e300, "input_length": 8', "'timestamp' must be a number of ms from 0"),
        ('"timestamp": 5, "input_length": 100000000000', "'input_length' must be a whole number"),
    ],
)
def test_absurd_trace_rows_are_refused(sim_url, tokenizer_dir, tmp_path, row, expected):
    path = tmp_path / "trace.jsonl"
    first = '{"timestamp": 0, "input_length": 8, "output_length": 2}\n'
    path.write_text(first + f'{{{row}, "output_length": 2}}\n')
    line = _refused("--tokenizer", str(tokenizer_dir), "--trace", str(path), host=sim_url)
    assert f"{path}:2: {expected}" in line


def test_an_uncached_hub_tokenizer_offline_fails_within_5_s_in_one_line(sim_url):
    import time

    start = time.monotonic()
    proc = run_headless(
        sim_url, 1, "--tokenizer", "llm-users-tests/no-such-tokenizer", timeout=60
    )  # fmt: skip  (run_locust sets HF_HUB_OFFLINE=1)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2 and elapsed < 5, (elapsed, proc.stderr[-2000:])
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert errors == [
        "llm-users: error: --tokenizer 'llm-users-tests/no-such-tokenizer' is not in the local "
        "Hugging Face cache and HF_HUB_OFFLINE is set: give a local tokenizer folder, or "
        "download it once where the hub can be reached"
    ]
    assert len(proc.stderr.splitlines()) < 10  # no retry storm of warnings
