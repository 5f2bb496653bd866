"""``python -m bench.wakeups [N]``: what one read costs, waited for per socket or from one epoll.

A forked writer sends one chat chunk to each of N socket pairs every 20 ms (a batching
server's decode step: every socket readable at once), 200 steps. The reader reads them:

- ``gevent``: a greenlet per socket, waiting on its own watcher then reading with
  ``recvmsg``, as each user read its own socket before ``llm_users/wire/poller.py``;
- ``epoll``: one loop waiting on one epoll descriptor, reading every ready socket.

Prints the reader's CPU (user + system) per read. Nothing is parsed: only the wake-up.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
from typing import Any

import gevent
import gevent.socket as gsocket
from gevent import get_hub, monkey

STEPS, GAP = 200, 0.02
CHUNK = (
    b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" t"}}]}\n\n'
)


def _writer(socks: list[socket.socket]) -> None:
    due = time.monotonic()
    for _ in range(STEPS):
        for s in socks:
            s.send(CHUNK)
        due += GAP
        time.sleep(max(0.0, due - time.monotonic()))
    for s in socks:
        s.close()


def per_socket(socks: list[socket.socket]) -> int:
    reads = [0]

    def user(s: socket.socket) -> None:
        g = gsocket.socket(fileno=s.detach())
        watcher = get_hub().loop.io(g.fileno(), 1)
        while True:
            gsocket.wait(watcher, 5.0)
            g.settimeout(5.0)
            data, _anc, _flags, _addr = g.recvmsg(65536, 64)
            if not data:
                return
            reads[0] += 1

    gevent.joinall([gevent.spawn(user, s) for s in socks])
    return reads[0]


def one_epoll(socks: list[socket.socket]) -> int:
    epoll: Any = monkey.get_original("select", "epoll")()
    by_fd = {}
    for s in socks:
        s.setblocking(False)
        epoll.register(s.fileno(), 1)
        by_fd[s.fileno()] = s
    watcher = get_hub().loop.io(epoll.fileno(), 1)
    reads = 0
    left = len(socks)
    while left:
        gsocket.wait(watcher, 5.0)
        for fd, _ in epoll.poll(0):
            data, _anc, _flags, _addr = by_fd[fd].recvmsg(65536, 64)
            if data:
                reads += 1
            else:
                epoll.unregister(fd)
                left -= 1
    return reads


def run(mode: str, n: int) -> str:
    pairs = [socket.socketpair() for _ in range(n)]
    pid = os.fork()
    if pid == 0:
        _writer([b for _, b in pairs])
        os._exit(0)
    for _, b in pairs:
        b.close()
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    reads = (per_socket if mode == "gevent" else one_epoll)([a for a, _ in pairs])
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.waitpid(pid, 0)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return (
        f"{mode:>6}: {n} sockets, {reads} reads, {cpu / reads * 1e6:.1f} us per read, "
        f"{100 * cpu / wall:.0f} % of a core"
    )


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 512
    for mode in ("gevent", "epoll"):
        print(run(mode, n), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
