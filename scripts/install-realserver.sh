#!/usr/bin/env bash
# The real third-party server of the compatibility test: `transformers serve` on the CPU.
# torch, never a CUDA build (gigabytes, and useless here), from the first that works of:
#   1. a local CPU wheel (torch-*+cpu-<this python's tag>-*.whl) in pip's find-links folders;
#   2. PyTorch's CPU-only wheel index;
# then transformers[serving] at the version already installed. Never fails: without torch it
# says so, and the real-server tests skip (fail under CI=true). $1 = the venv's bin folder.
# TORCH_WHEEL_DIRS (colon-separated) replaces the find-links folders (tests use it).
set -uo pipefail
BIN=${1:-.venv/bin}
PY="$BIN/python"
CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

skip() {
    echo "install: real server: skipped ($1): the real-server tests will skip (fail under CI=true)"
    exit 0
}
is_cpu_torch() { "$PY" -c 'import sys, torch; sys.exit(torch.version.cuda is not None)' 2>/dev/null; }

if is_cpu_torch; then
    how="the CPU build already installed"
else
    tag=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])') || skip "no $PY"
    dirs=${TORCH_WHEEL_DIRS-$(
        "$PY" -m pip config get global.find-links 2>/dev/null
        echo "${PIP_FIND_LINKS:-}"
    )}
    wheel=
    for d in ${dirs//:/ }; do
        d=${d#file://}
        for w in "$d"/torch-*+cpu-"$tag"-*.whl; do
            if [ -f "$w" ]; then wheel=$w; fi  # the glob sorts: the last is the newest
        done
    done
    if [ -n "$wheel" ] && "$PY" -m pip install -q "$wheel"; then
        how="the local CPU wheel ${wheel##*/}"
    elif "$PY" -m pip install -q torch --index-url "$CPU_INDEX"; then
        how="PyTorch's CPU-only index"
    else
        skip "no local CPU wheel for $tag, and $CPU_INDEX could not be reached"
    fi
    if ! is_cpu_torch; then
        "$PY" -m pip uninstall -q -y torch
        skip "the torch that pip installed is not a CPU build; removed"
    fi
fi
V=$("$PY" -c 'import importlib.metadata as m; print(m.version("transformers"))') ||
    skip "transformers is not installed in $BIN"
"$PY" -m pip install -q "transformers[serving]==$V" || skip "pip could not install transformers[serving]==$V"
echo "install: real server: torch from $how, transformers[serving]==$V"
