#!/usr/bin/env bash
# `make test-pythons`: the unit and in-process tests under each supported Python (3.10-3.13).
# Each interpreter gets its own .venv-pyX.Y with `pip install -e '.[test-core]'` (what the unit and
# in-process tests need), reused while pyproject.toml is unchanged. .venv's own Python is skipped (make test runs it).
# A missing interpreter is skipped with a line, except under CI=true for the oldest (3.10)
# and the newest (3.13), which must be there. Extra arguments go to pytest. UNIT_ONLY="3.13"
# runs only tests/unit under the versions it names (CI: the newest, to stay under its budget).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSIONS=${PYTHONS:-"3.10 3.11 3.12 3.13"}
REQUIRED_IN_CI="3.10 3.13"
MAIN_PY=${MAIN_PY:-.venv/bin/python}
stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
main_version=$("$MAIN_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)

find_python() {  # the first interpreter of version $1: pythonX.Y on PATH, then pyenv's folders
    local v=$1 c
    for c in "$(command -v "python$v" 2>/dev/null || true)" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python; do
        if [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys, venv' >/dev/null 2>&1 &&
            [ "$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$v" ]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

# One interpreter: install its venv if needed, run the tests; prints "RESULT <v> passed|FAILED ...".
run_one() {
    local v=$1 py=$2 start=$SECONDS venv=.venv-py$1 result
    shift 2
    if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$stamp" ]; then
        echo "test-pythons: $v: installing into $venv ($py)"
        rm -rf "$venv"
        "$py" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q --no-compile -e '.[test-core]'
        echo "$stamp" >"$venv/.installed"
    fi
    local installed=$((SECONDS - start)) paths="tests/unit tests/integration"
    [[ " ${UNIT_ONLY:-} " == *" $v "* ]] && paths="tests/unit"
    echo "test-pythons: $v: pytest $paths"
    # shellcheck disable=SC2086  # two folder names
    if HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=$PWD \
        "$venv/bin/python" -m pytest -q -p no:cacheprovider $paths "$@"; then
        result=passed
    else
        result=FAILED
    fi
    echo "RESULT $v $result, install ${installed} s, total $((SECONDS - start)) s"
}

# The interpreters run side by side (each pytest is one process; the machine has two cores
# or more), each into its own log, printed whole when all have ended: the suite is meant to
# pass on a loaded machine (make test-stress), and CI gains the time of one of them.
missing=() pids=() logs=()
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
for v in $VERSIONS; do
    if [ "$v" = "$main_version" ]; then
        echo "test-pythons: $v: skipped, it is .venv's interpreter (make test runs it)"
        continue
    fi
    if ! py=$(find_python "$v"); then
        if [ "${CI:-}" = "true" ] && [[ " $REQUIRED_IN_CI " == *" $v "* ]]; then
            echo "test-pythons: $v: MISSING, and CI requires it (no python$v, no pyenv $v.*)" >&2
            missing+=("$v")
        else
            echo "test-pythons: $v: skipped, no interpreter (no python$v on PATH, no pyenv $v.*)"
        fi
        continue
    fi
    run_one "$v" "$py" "$@" >"$logdir/$v.log" 2>&1 &
    pids+=($!) logs+=("$logdir/$v.log")
done
for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" || true; done
failed=()
for log in ${logs[@]+"${logs[@]}"}; do
    grep -v '^RESULT ' "$log"
    line=$(grep '^RESULT ' "$log" || echo "RESULT $(basename "$log" .log) FAILED (no result)")
    echo "test-pythons: ${line#RESULT }"
    [[ $line == *" passed,"* ]] || failed+=("$(basename "$log" .log)")
done
if [ ${#missing[@]} -gt 0 ] || [ ${#failed[@]} -gt 0 ]; then
    echo "test-pythons: failed: ${failed[*]:-none}; missing: ${missing[*]:-none}" >&2
    exit 1
fi
