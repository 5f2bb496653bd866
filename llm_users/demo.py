"""`make demo`: a short streaming test against the built-in simulator, summary printed.

Starts the simulator, writes its tokenizer to a temporary folder, runs Locust headless
(8 users, 5 requests each) and stops the simulator. No GPU, no network, ~10 seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .simulator import SimulatorProcess, save_tokenizer

LOCUSTFILE = Path(__file__).with_name("locustfile.py")  # the bundled one, as `llm-users run`


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="llm-users-demo-") as tmp:
        tok_dir = Path(tmp) / "tokenizer"
        save_tokenizer(tok_dir)
        with SimulatorProcess(ttft_ms=120, itl_ms=15) as sim:
            print(f"simulator: {sim.url} (120 ms to first token, 15 ms between tokens)", flush=True)
            cmd = [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(LOCUSTFILE),
                "--headless",
                "-u",
                "8",
                "-r",
                "8",
                "--host",
                sim.url,
                "--stream",
                "--tokenizer",
                str(tok_dir),
                "--max-tokens",
                "64",
                "--requests-per-user",
                "5",
                "--only-summary",
                "--loglevel",
                "WARNING",
            ]
            print("$ locust " + " ".join(cmd[3:]), flush=True)
            env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
            proc = subprocess.run(cmd, env=env, timeout=120, capture_output=True, text=True)
            print(_summary_block(proc.stdout) or proc.stdout, flush=True)
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
            stats = sim.stats()
            print(f"simulator's own count: {stats['completed']} completed requests", flush=True)
            code = proc.returncode
    return code


def _summary_block(out: str) -> str:
    """The plugin's summary (the seed's lines and the table), without Locust's own tables."""
    lines = out.splitlines()
    if "-" * 50 not in lines:
        return ""
    start = lines.index("-" * 50)
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("Type ")), len(lines))
    return "\n".join(lines[start:end]).rstrip()


if __name__ == "__main__":
    sys.exit(main())
