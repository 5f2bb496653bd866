"""Run the simulator as a subprocess and talk to its /sim endpoints.

Standard library only (urllib, select): it is imported by gevent-patched test processes.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import SimConfig

_READY = b"listening on "
# Never route 127.0.0.1 through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """Terminate a child, kill it if it lingers past ``timeout``, and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SimulatorError(RuntimeError):
    """The simulator failed to start, or a /sim call failed."""


class SimulatorProcess:
    """``with SimulatorProcess(ttft_ms=5, itl_ms=2) as sim:`` serves on ``sim.url`` until exit.

    Keyword arguments other than the named ones are :class:`SimConfig` knobs.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cpu: int | Iterable[int] | None = None,
        startup_timeout: float = 20.0,
        env: dict[str, str] | None = None,
        tls: tuple[str, str] | None = None,
        **knobs: Any,
    ) -> None:
        SimConfig.from_dict(knobs)  # fail fast, in the caller, on a bad knob
        self.host = host
        self.knobs = knobs
        self.startup_timeout = startup_timeout
        self._requested_port = port
        self._cpu = [cpu] if isinstance(cpu, int) else (list(cpu) if cpu is not None else None)
        self._env = env
        self._tls = tls  # (cert.pem, key.pem): serve HTTPS
        self.scheme = "https" if tls else "http"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:41234``."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        # llm_users/__init__ imports nothing eagerly, so ``-m`` runs on plain asyncio.
        cmd = [sys.executable, "-m", "llm_users.simulator", "--host", self.host]
        cmd += ["--port", str(self._requested_port), "--config-json", json.dumps(self.knobs)]
        cmd.append("--watch-stdin")  # the child exits if we die without stopping it
        if self._cpu is not None:
            cmd += ["--cpu", ",".join(str(c) for c in self._cpu)]
        if self._tls is not None:
            cmd += ["--tls-cert", self._tls[0], "--tls-key", self._tls[1]]
        return cmd

    def start(self) -> SimulatorProcess:
        """Spawn the server and wait for its ``listening on`` line."""
        if self._proc is not None:
            raise SimulatorError("already started")
        env = dict(os.environ if self._env is None else self._env)
        # The child runs this very copy of the package, wherever it was imported from.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this method
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        try:
            line = self._read_ready_line()
            self.port = int(line.rsplit(b":", 1)[1])
        except BaseException:
            self.stop()
            raise
        return self

    def _read_ready_line(self) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + self.startup_timeout
        buf = b""
        poller = select.poll()  # not select(): a test process may hold descriptors past 1024
        poller.register(fd, select.POLLIN)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(f"no '{_READY.decode()}' line within {self.startup_timeout:g} s")
            ready = poller.poll(min(remaining, 0.2) * 1000.0)
            chunk = os.read(fd, 4096) if ready else b""
            if ready and not chunk:
                self._fail("exited before listening")
            buf += chunk
        line = buf.split(b"\n", 1)[0].strip()
        if not line.startswith(_READY):
            self._fail(f"unexpected first line {line!r}")
        return line

    def _fail(self, why: str) -> None:
        assert self._proc is not None
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace").strip()
        raise SimulatorError(f"simulator {why} (exit code {self._proc.returncode}); stderr:\n{err}")

    def stop(self) -> None:
        """Terminate (then kill if needed) and reap the server; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_process(proc)
        for pipe in (proc.stdin, proc.stdout, self._stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON request to the server; HTTP errors raise ``SimulatorError``."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        opener = _OPENER
        if self.scheme == "https":  # the test's own self-signed server: the control plane only
            import ssl

            ctx = ssl._create_unverified_context()
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
            )
        try:
            with opener.open(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise SimulatorError(f"{method} {path} -> {exc.code}: {detail}") from None

    def records(self) -> list[dict[str, Any]]:
        """Per-request ground-truth records, oldest first."""
        return self.call("GET", "/sim/records")

    def stats(self) -> dict[str, Any]:
        return self.call("GET", "/sim/stats")

    def reset(self) -> None:
        """Clear records and counters; request ids restart at 1."""
        self.call("POST", "/sim/reset", {})

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change knobs at runtime; returns the whole new config."""
        return self.call("POST", "/sim/config", changes)

    def config(self) -> dict[str, Any]:
        return self.call("GET", "/sim/config")
