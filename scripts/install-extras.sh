#!/usr/bin/env bash
# What `make install` adds beyond pip's `.[test]`: the browser for the web UI test and the
# real third-party server for the compatibility test. Idempotent, and never fails: each step
# says what it installed or skipped (no root, no browser, no CPU torch), and the tests that
# need it then skip, or fail under CI=true. $1 = the venv's bin folder.
set -uo pipefail
BIN=${1:-.venv/bin}
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/install-browser.sh" "$BIN" || echo "install: browser: skipped (install-browser.sh failed)"
bash "$here/install-realserver.sh" "$BIN" || echo "install: real server: skipped (install-realserver.sh failed)"
