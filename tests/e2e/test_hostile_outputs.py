"""What a run writes and prints, as real locust processes: outputs never through a symlink,
server text never raw on a terminal, totals a server inflates never lose the summary, and a
run that completed nothing never exits 0."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator

import pytest

from tests.helpers import run_headless

pytestmark = pytest.mark.e2e

HUGE = 2**64 - 1  # fits orjson; two of them summed do not
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x9b31mboom\r"


class _Hostile(http.server.BaseHTTPRequestHandler):
    """An OpenAI-like server (its model list is plain) whose every answer is, by ``mode``:
    "usage", usage counts near 2^64; "escapes", HTTP 500 with terminal escape sequences in
    the message."""

    mode = "usage"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.mode == "escapes":
            self._send(500, {"error": {"message": ESCAPES, "type": "x"}})
            return
        n = HUGE
        self._send(200, {
            "id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": n, "completion_tokens": n, "total_tokens": n},
        })  # fmt: skip


@pytest.fixture
def hostile() -> Iterator[type[_Hostile]]:
    handler = type("Handler", (_Hostile,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler
    server.shutdown()
    server.server_close()


def test_usage_near_2_64_is_clamped_and_the_summary_kept(hostile, tmp_path):
    hostile.mode = "usage"
    out, records = tmp_path / "s.json", tmp_path / "r.jsonl"
    proc = run_headless(hostile.url, 2, "--no-stream", "--requests-per-user", "3",
                        "--summary-json", str(out), "--records", str(records),
                        timeout=90)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(out.read_text())
    assert s["requests"] == 6 and s["usage_clamped_requests"] == 6
    assert s["output_tokens"] == 6 * 10**12
    assert any("clamped" in note for note in s["notes"])
    rows = [json.loads(x) for x in records.read_text().splitlines()]
    assert len(rows) == 6 and all(r["usage_clamped"] for r in rows)


def test_server_escape_sequences_never_reach_the_terminal(hostile):
    hostile.mode = "escapes"
    proc = run_headless(hostile.url, 1, "--requests-per-user", "2", "--print-requests",
                        timeout=90)  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    printed = proc.stdout + proc.stderr
    assert "\\x1b]0;owned\\x07\\x1b[2J\\x9b31mboom\\x0d" in proc.stdout  # shown, escaped
    assert not set(printed) & {"\x1b", "\x07", "\x9b", "\r"}


def test_an_output_that_is_a_symlink_is_refused_with_exit_5(simulator, tmp_path):
    sim = simulator(ttft_ms=1, itl_ms=1, output_tokens=3)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "s.json"
    link.symlink_to(victim)
    proc = run_headless(sim.url, 1, "--requests-per-user", "2", "--summary-json", str(link))
    assert proc.returncode == 5, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if "llm-users: error:" in ln]
    assert errors == [f"llm-users: error: cannot write the summary JSON {link}: a symbolic "
                      "link, not a regular file: refusing to replace it"]  # fmt: skip
    assert link.is_symlink() and victim.read_text() == "keep"
    assert "LLM summary" in proc.stdout  # the console summary is still printed


def test_summary_json_to_dev_stdout_is_streamed(simulator):
    sim = simulator(ttft_ms=1, itl_ms=1, output_tokens=3)
    proc = run_headless(sim.url, 1, "--requests-per-user", "2", "--summary-json", "/dev/stdout")
    assert proc.returncode == 0, proc.stderr[-3000:]
    start = proc.stdout.index("\n{\n") + 1  # the JSON follows the console summary
    summary, _ = json.JSONDecoder().raw_decode(proc.stdout[start:])
    assert summary["requests"] == 2
    assert os.path.exists("/dev/stdout")


def test_a_run_in_which_nothing_completed_exits_6(simulator, tmp_path):
    # the first token comes after the run ends: no request is ever counted, ok or failed
    out = tmp_path / "s.json"
    slow = simulator(ttft_ms=30_000, itl_ms=1, output_tokens=3)
    proc = run_headless(slow.url, 2, "--stream", "-t", "3s", "--summary-json", str(out),
                        "--preflight", "off", timeout=90)  # fmt: skip
    assert proc.returncode == 6, proc.stdout[-2000:] + proc.stderr[-3000:]
    s = json.loads(out.read_text())
    assert s["requests"] == 0 and s["failures"] == 0
    assert any("no request completed" in note for note in s["notes"])
    assert "no request completed" in proc.stdout
