"""Capture raw HTTP exchanges with ``transformers serve`` into tests/fixtures/realserver/.

    python tests/realserver/capture_fixtures.py [--out DIR] [--base-url URL --model ID]

Without --base-url it builds the tiny model and starts its own server (server.py).
For each case it writes NAME.request.http (the exact bytes sent) and
NAME.response.http (the exact bytes received on the socket: status line, headers,
body with its chunked framing), reading with keep-alive framing (Content-Length or
chunked up to the 0-size chunk), like the plugin's client. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from realserver.server import TransformersServe, ensure_tiny_model  # noqa: E402

DEFAULT_OUT = HERE.parents[1] / "tests" / "fixtures" / "realserver"

SYSTEM = "You are a helpful assistant."
USER = "Tell me a story about a robot who learns to paint the sea."


def plugin_body(model: str, stream: bool, max_tokens: int = 8, **extra: object) -> dict:
    """The body the plugin sends by default, minus repetition_penalty (422 here)."""
    body: dict = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER},
        ],
        "max_tokens": max_tokens,
        "stream": stream,
        "temperature": 0.01,
        "top_p": 0.3,
    }
    body.update(extra)
    return body


def cases(model: str) -> list[tuple[str, str, str, dict | None]]:
    """(name, method, path, json body)."""
    chat = "/v1/chat/completions"
    return [
        ("health", "GET", "/health", None),
        ("models", "GET", "/v1/models", None),
        ("chat_stream", "POST", chat, plugin_body(model, True)),
        (
            "chat_stream_include_usage",
            "POST",
            chat,
            plugin_body(model, True, stream_options={"include_usage": True}),
        ),
        ("chat_nonstream", "POST", chat, plugin_body(model, False)),
        (
            "chat_stream_no_model_field",
            "POST",
            chat,
            {k: v for k, v in plugin_body(model, True, max_tokens=3).items() if k != "model"},
        ),
        (
            "completions_stream",
            "POST",
            "/v1/completions",
            {
                "model": model,
                "prompt": USER,
                "max_tokens": 8,
                "stream": True,
                "temperature": 0.01,
                "top_p": 0.3,
            },
        ),
        (
            "completions_nonstream",
            "POST",
            "/v1/completions",
            {
                "model": model,
                "prompt": USER,
                "max_tokens": 8,
                "stream": False,
                "temperature": 0.01,
                "top_p": 0.3,
            },
        ),
        (
            "error_repetition_penalty",
            "POST",
            chat,
            plugin_body(model, True, repetition_penalty=1.0),
        ),
        ("error_ignore_eos", "POST", chat, plugin_body(model, True, ignore_eos=True)),
        ("error_min_tokens", "POST", chat, plugin_body(model, True, min_tokens=4)),
        ("error_unknown_field", "POST", chat, plugin_body(model, True, foo_bar=1)),
        ("error_bad_model", "POST", chat, plugin_body("no-such/model", True)),
        ("error_empty_model", "POST", chat, plugin_body("", True)),
        ("error_bad_json", "POST", chat, None),
        ("error_mid_stream", "POST", chat, plugin_body(model, True, stop=5)),
        ("error_not_found", "GET", "/v1/nope", None),
    ]


def request_bytes(
    host: str, port: int, method: str, path: str, body: dict | None, name: str
) -> bytes:
    if name == "error_bad_json":
        payload = b'{"model": "x", "messages": ['
    else:
        payload = b"" if body is None else json.dumps(body).encode()
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "User-Agent: capture/1",
        "Accept: */*",
    ]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def read_response(sock: socket.socket) -> tuple[bytes, list[tuple[float, int]]]:
    """Read one HTTP/1.1 response with its framing; return raw bytes and (t, nbytes) recvs."""
    buf = bytearray()
    recvs: list[tuple[float, int]] = []
    t0 = time.monotonic()

    def more() -> None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the response ended")
        recvs.append((round(time.monotonic() - t0, 4), len(data)))
        buf.extend(data)

    while b"\r\n\r\n" not in buf:
        more()
    head_end = buf.index(b"\r\n\r\n") + 4
    headers = {}
    for line in bytes(buf[:head_end]).decode("latin-1").split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        end = head_end + int(headers["content-length"])
        while len(buf) < end:
            more()
        return bytes(buf), recvs
    if headers.get("transfer-encoding", "").lower() == "chunked":
        pos = head_end
        while True:
            while b"\r\n" not in buf[pos:]:
                more()
            line_end = buf.index(b"\r\n", pos)
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            pos = line_end + 2 + size + 2
            while len(buf) < pos:
                more()
            if size == 0:
                return bytes(buf), recvs
    raise ValueError(f"no framing in headers {headers}")


def capture(base_url: str, model: str, out: Path) -> dict:
    u = urlsplit(base_url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    # One keep-alive connection for all cases, as a load-test user would have.
    sock = socket.create_connection((host, port), timeout=60)
    try:
        for name, method, path, body in cases(model):
            req = request_bytes(host, port, method, path, body, name)
            sock.sendall(req)
            resp, recvs = read_response(sock)
            (out / f"{name}.request.http").write_bytes(req)
            (out / f"{name}.response.http").write_bytes(resp)
            summary[name] = {"status": resp.split(b"\r\n", 1)[0].decode(), "recvs": recvs}
            if b"connection: close" in resp.split(b"\r\n\r\n", 1)[0].lower():
                sock.close()
                sock = socket.create_connection((host, port), timeout=60)
    finally:
        sock.close()
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--base-url")
    parser.add_argument("--model")
    args = parser.parse_args(argv)
    if args.base_url:
        summary = capture(args.base_url, args.model, Path(args.out))
    else:
        with TransformersServe(ensure_tiny_model(), seed=0) as srv:
            summary = capture(srv.base_url, srv.model_id, Path(args.out))
    for name, info in summary.items():
        print(f"{name:32s} {info['status']:40s} recvs={info['recvs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
