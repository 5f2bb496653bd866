"""Run the simulator CLI as a script, skipping ``llm_users/__init__`` (locust, gevent).

Under gevent's monkey-patching asyncio would run on gevent's selector and sockets.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    # sys.path[0] is this folder: its modules (parse, state, ...) must not shadow others.
    sys.path[0] = str(HERE.parents[1])
    if "llm_users" not in sys.modules:
        stub = types.ModuleType("llm_users")
        stub.__path__ = [str(HERE.parent)]  # a bare namespace: submodules import normally
        sys.modules["llm_users"] = stub
    from llm_users.simulator.__main__ import main as cli

    return cli()


if __name__ == "__main__":
    sys.exit(main())
