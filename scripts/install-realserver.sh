#!/usr/bin/env bash
# The real third-party server of the compatibility test: `transformers serve` on the CPU.
# torch==2.13.0 is the CPU build that lies on this kind of machine (an unpinned torch would
# pull a multi-GB CUDA build); transformers[serving] at the version already installed.
set -euo pipefail
BIN=${1:-.venv/bin}
V=$("$BIN/python" -c 'import importlib.metadata as m; print(m.version("transformers"))')
"$BIN/pip" install -q "torch==2.13.0" "transformers[serving]==$V"
"$BIN/python" -c 'import sys, torch; sys.exit(torch.version.cuda is not None)'
