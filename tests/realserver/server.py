"""Run Hugging Face ``transformers serve`` on 127.0.0.1 as a subprocess, for tests.

Standard library only (subprocess, urllib, socket): safe to import into a
gevent-monkey-patched test process. torch/transformers are only imported by the child
processes (the model builder and the server), which run ``sys.executable`` by default,
so the venv that runs the tests must have ``torch`` and ``transformers[serving]``.

Usage::

    from realserver.server import TransformersServe, ensure_tiny_model

    model_dir = ensure_tiny_model()            # builds .cache/tiny-llama once (~4 s)
    with TransformersServe(model_dir) as srv:  # free port, waits until ready (~4-6 s)
        srv.base_url   # "http://127.0.0.1:PORT"  (append /v1/chat/completions)
        srv.model_id   # the value for the request's "model" field (an absolute path)

The server is started with the model preloaded (``transformers serve MODEL_DIR``): it is
"pinned" to that model, ``GET /v1/models`` lists exactly ``model_id``, and a request's
``model`` must be exactly ``model_id`` or absent (any other value, "" included: HTTP 400).
Everything runs offline: HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1 and
HF_HUB_DISABLE_UPDATE_CHECK=1 (the ``transformers`` CLI otherwise asks PyPI, once a day,
for a newer version of itself).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
BUILD_SCRIPT = HERE / "build_tiny_model.py"
DEFAULT_MODEL_DIR = REPO_ROOT / ".cache" / "tiny-llama"

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}


class ServerStartError(RuntimeError):
    """The server exited, or was not ready in time. The message ends with its log tail."""


def _child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    if extra:
        env.update(extra)
    return env


def ensure_tiny_model(
    path: str | os.PathLike[str] | None = None,
    *,
    python: str | None = None,
    timeout: float = 300.0,
) -> Path:
    """Build the tiny random-weight model into PATH unless it is already complete.

    Runs ``build_tiny_model.py`` in a child process (it alone imports torch). That script
    returns at once when PATH holds a complete build. Returns the absolute path.
    """
    target = Path(path if path is not None else DEFAULT_MODEL_DIR).resolve()
    proc = subprocess.run(
        [python or sys.executable, str(BUILD_SCRIPT), str(target)],
        env=_child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = proc.stdout.decode("utf-8", "replace")[-4000:]
        raise RuntimeError(
            f"building the tiny model into {target} failed (exit {proc.returncode}):\n{tail}"
        )
    return target


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on HOST a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_get_json(url: str, timeout: float = 5.0) -> tuple[int, object]:
    """GET URL, return (status, decoded JSON or raw text). No proxy is ever used."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


class TransformersServe:
    """Context manager: ``transformers serve MODEL_DIR`` on HOST:PORT, ready on enter.

    Args:
        model_dir: a local model folder (see ``ensure_tiny_model``). Preloaded at start.
        port: 0 picks a free port.
        host: listen address, 127.0.0.1 by default.
        startup_timeout: seconds to wait for ``GET /health`` = 200 and the model listed.
        torch_threads: OMP/MKL thread count for the server (None leaves torch's default,
            one per core). 1 leaves a core to the load generator.
        seed: ``--default-seed`` (torch seed set once at start).
        extra_args: more ``transformers serve`` options, e.g. ``["--continuous-batching"]``.
        env: extra environment variables for the server.
        python: interpreter that has transformers[serving]; defaults to this one.
        log_path: file receiving the server's stdout+stderr; a temp file by default.

    Attributes (valid after start): ``base_url`` ("http://127.0.0.1:PORT"), ``model_id``
    (the ``model`` value requests must carry), ``port``, ``pid``, ``log_path``,
    ``startup_seconds``.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        startup_timeout: float = 120.0,
        torch_threads: int | None = None,
        seed: int | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        python: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.model_dir = Path(model_dir if model_dir is not None else DEFAULT_MODEL_DIR).resolve()
        self.model_id = str(self.model_dir)
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.torch_threads = torch_threads
        self.seed = seed
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.python = python or sys.executable
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path is not None else None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # ----- public API -----

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        cmd = [
            self.python,
            "-m",
            "transformers.cli.transformers",
            "serve",
            self.model_id,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--device",
            "cpu",
            "--log-level",
            "warning",
        ]
        if self.seed is not None:
            cmd += ["--default-seed", str(self.seed)]
        return cmd + self.extra_args

    def start(self) -> TransformersServe:
        if self._proc is not None:
            raise RuntimeError("already started")
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no model in {self.model_dir} (run ensure_tiny_model)")
        if self.port == 0:
            self.port = free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        env = _child_env(self.extra_env)
        if self.torch_threads is not None:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.torch_threads)
        t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                self.command(),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the test run is not sent to it twice
            )
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, grace: float = 2.0) -> int | None:
        """Stop the server; returns its exit code (-15 is the normal one). Idempotent.

        SIGTERM starts uvicorn's graceful shutdown, which waits for in-flight streams to
        end; if it has not exited after GRACE seconds, SIGINT (uvicorn's "force exit" once
        shutting down) ends it at once, and SIGKILL follows 5 s later as a last resort.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGINT, 5.0), (signal.SIGKILL, 10.0)):
            if proc.poll() is not None:
                break
            proc.send_signal(sig)
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        if self._own_log and self.log_path is not None and proc.returncode in (0, -15):
            self.log_path.unlink(missing_ok=True)
        return proc.returncode

    def log_tail(self, max_chars: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()[-max_chars:]
        return data.decode("utf-8", "replace")

    def __enter__(self) -> TransformersServe:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----- internals -----

    def _fail(self, why: str) -> ServerStartError:
        cmd = " ".join(self.command())
        return ServerStartError(
            f"transformers serve {why}\ncommand: {cmd}\nlog {self.log_path} (tail):\n"
            f"{self.log_tail()}"
        )

    def _wait_ready(self, t0: float) -> None:
        # The model is loaded before uvicorn binds the port, so /health = 200 means ready.
        assert self._proc is not None
        deadline = t0 + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self._fail(f"exited with code {code} before it was ready")
            try:
                status, body = http_get_json(self.base_url + "/health", timeout=2.0)
            except OSError:
                status = 0
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise self._fail(f"not ready after {self.startup_timeout:.0f} s")
            time.sleep(0.2)
        status, body = http_get_json(self.base_url + "/v1/models", timeout=5.0)
        ids = [m.get("id") for m in body.get("data", [])] if isinstance(body, dict) else []
        if status != 200 or self.model_id not in ids:
            raise self._fail(f"/v1/models answered {status} {body!r}, not listing {self.model_id}")


def _main(argv: Sequence[str] | None = None) -> int:
    """``python tests/realserver/server.py [MODEL_DIR] [--port N]``: build, serve, wait."""
    import argparse

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("model_dir", nargs="?", default=str(DEFAULT_MODEL_DIR))
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    model_dir = ensure_tiny_model(args.model_dir)
    with TransformersServe(model_dir, args.port) as srv:
        print(f"ready in {srv.startup_seconds:.1f} s: {srv.base_url} model={srv.model_id!r}")
        print(f"log: {srv.log_path}  (Ctrl-C to stop)")
        try:
            while srv._proc is not None and srv._proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(_main())
