"""The API key goes only to the host the user gave: not on a redirect, not to a host that a
web visitor types into the start form; and the form sets only the fields it shows."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import locust_cmd, run_headless

pytestmark = pytest.mark.e2e

KEY = "sk-pinned-SECRET-0123456789abcdef"
OTHER_KEY = "sk-typed-in-the-form-987654321"


class Recorder:
    """A second origin on loopback: records every request's path and Authorization."""

    def __init__(self, redirect_to: str = "") -> None:
        self.seen: list[tuple[str, str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.seen.append(
                    (self.command, self.path, self.headers.get("Authorization", ""))
                )
                if redirect_to:
                    self.send_response(307)
                    self.send_header("Location", redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path.endswith("/models"):
                    body = {"object": "list", "data": [{"id": "m", "object": "model"}]}
                else:
                    body = {
                        "id": "x",
                        "object": "chat.completion",
                        "model": "m",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "hi"},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def auths(self) -> set[str]:
        return {auth for _m, _p, auth in self.seen}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Any]:
    made: list[Recorder] = []

    def make(redirect_to: str = "") -> Recorder:
        r = Recorder(redirect_to)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def test_the_preflight_never_follows_a_redirect_with_the_key(recorder):
    elsewhere = recorder()
    redirector = recorder(redirect_to=elsewhere.url)
    proc = run_headless(redirector.url, 1, "--api-key", KEY, "--requests-per-user", "1")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert redirector.seen and redirector.auths() == {f"Bearer {KEY}"}  # the host itself: yes
    assert elsewhere.seen == []  # the other origin: nothing at all
    lines = [x for x in proc.stderr.splitlines() if x.startswith("llm-users: error:")]
    assert len(lines) == 1 and "redirect (HTTP 307)" in lines[0], proc.stderr[-2000:]
    assert elsewhere.url in lines[0]
    assert KEY not in proc.stdout + proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, form: dict[str, str]) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as resp:
        return dict(json.loads(resp.read()))


def _wait_until(check: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _ui_up(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/stats/requests", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _state(base: str) -> str:
    with urllib.request.urlopen(base + "/stats/requests", timeout=5) as resp:
        return str(json.loads(resp.read())["state"])


def _run_from_the_form(base: str, form: dict[str, str], done: Any) -> dict[str, Any]:
    """Start a run as the browser does (every field of the form), wait for its end."""
    full = {"user_count": "1", "spawn_rate": "1", "api_key": "", "requests_per_user": "2"}
    answer = _post(base + "/swarm", {**full, **form})
    assert answer.get("success"), answer
    _wait_until(done, "the run did not reach the server")
    _wait_until(lambda: _state(base) == "stopped", "the run did not end")
    return answer


def _posts(r: Recorder) -> int:
    return sum(m == "POST" for m, _p, _a in r.seen)


def test_the_web_form_cannot_send_the_key_elsewhere_or_touch_files(
    simulator, recorder, tmp_path: Path
):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=2, api_key=KEY)
    stranger = recorder()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        locust_cmd(
            "--web-host", "127.0.0.1", "--web-port", str(port), "--host", sim.url, "--api-key", KEY
        ),  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_until(lambda: _ui_up(base), "web UI not up")
        # A host typed in the form, no key typed: the start-up key stays with its host.
        _run_from_the_form(base, {"host": stranger.url}, lambda: _posts(stranger) >= 2)
        # the run went there (preflight and requests) ...
        assert stranger.auths() == {""}  # ... without any key
        # Options the form does not show are refused, and nothing is read or written.
        written = tmp_path / "out" / "summary.json"
        for field, value in [
            ("summary_json", str(written)),
            ("records", str(tmp_path / "records.jsonl")),
            ("dataset", "/etc/hostname"),
            ("html", str(tmp_path / "locust.html")),
        ]:
            before = len(stranger.seen)
            answer = _post(base + "/swarm", {"user_count": "1", "spawn_rate": "1",
                                             "host": stranger.url, field: value})  # fmt: skip
            assert answer["success"] is False, field
            assert f"cannot set '{field}'" in answer["message"]
            time.sleep(0.5)
            assert len(stranger.seen) == before and _state(base) != "running"
        assert not any(tmp_path.rglob("*"))  # no file written
        # A key typed in the form with the new host: that one goes there, only that one.
        _run_from_the_form(
            base, {"host": stranger.url, "api_key": OTHER_KEY}, lambda: _posts(stranger) >= 4
        )
        assert f"Bearer {OTHER_KEY}" in stranger.auths()
        assert f"Bearer {KEY}" not in stranger.auths()
        # Back to the start-up host, no key typed: it gets the start-up key again.
        completed = sim.stats()["completed"]
        # accepted (the simulator answers 401 without it): the key went along
        _run_from_the_form(
            base, {"host": sim.url}, lambda: sim.stats()["completed"] >= completed + 2
        )
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert KEY not in out + err
    assert "the web UI listens on" not in err  # --web-host 127.0.0.1: not every interface
