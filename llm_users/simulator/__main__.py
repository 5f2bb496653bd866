"""CLI: ``python -m llm_users.simulator --host 127.0.0.1 --port 9997 [knob flags]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from . import heap
from .config import SimConfig, add_arguments, from_namespace


def build_parser() -> argparse.ArgumentParser:
    """The command line: server flags, then one flag per knob (``--help`` lists them all)."""
    parser = argparse.ArgumentParser(
        prog="llm-users simulator",
        description="Simulated OpenAI-compatible LLM server (ground truth for llm_users). "
        "Every knob can also be changed while it runs: POST /sim/config with a JSON object.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=9997,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument("--config-json", help="knobs as a JSON object; flags override it")
    parser.add_argument("--write-tokenizer", metavar="DIR", help="write the tokenizer and exit")
    parser.add_argument("--cpu", help="pin to these CPUs, comma-separated (benchmarks)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (and --tls-key)")
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    parser.add_argument(
        "--watch-stdin", action="store_true", help="exit when stdin closes (parent died)"
    )
    add_arguments(parser.add_argument_group("simulation knobs"))
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


async def serve(
    cfg: SimConfig, host: str, port: int, watch_stdin: bool = False, ssl_context: Any = None
) -> None:
    """Serve until SIGINT/SIGTERM (or stdin EOF); announce the bound URL on stdout."""
    from aiohttp import web

    from .arrival import stamping
    from .server import build_app

    runner = web.AppRunner(build_app(cfg), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    assert runner.server is not None
    # Our own listener instead of a TCPSite: its protocols stamp each request's arrival.
    listener = await asyncio.get_running_loop().create_server(
        stamping(runner.server), host, port, backlog=4096, ssl=ssl_context, reuse_address=True
    )
    bound = listener.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context is not None else "http"
    heap.settle()  # start-up's objects are never scanned again (heap.py)
    print(f"listening on {scheme}://{host}:{bound}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if watch_stdin:
        fd = sys.stdin.fileno()

        def on_stdin() -> None:
            if not os.read(fd, 4096):
                loop.remove_reader(fd)
                stop.set()

        loop.add_reader(fd, on_stdin)
    try:
        await stop.wait()
    finally:
        listener.close()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_tokenizer:
        from .tokenizer import save_tokenizer

        print(save_tokenizer(args.write_tokenizer))
        return 0
    try:
        base = SimConfig.from_dict(json.loads(args.config_json or "{}"))
        cfg = from_namespace(args, base)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.cpu:
        os.sched_setaffinity(0, {int(c) for c in args.cpu.split(",")})
    ssl_context = None
    if args.tls_cert:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    asyncio.run(serve(cfg, args.host, args.port, args.watch_stdin, ssl_context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
