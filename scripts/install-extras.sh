#!/usr/bin/env bash
# What `make install` adds beyond pip's `.[test]`: the browser for the web UI test and the
# real third-party server for the compatibility test. Idempotent. $1 = the venv's bin folder.
set -euo pipefail
BIN=${1:-.venv/bin}
here=$(cd "$(dirname "$0")" && pwd)
# Headless Chromium from Debian (Playwright drives it; it never downloads a browser).
if [ -f "$here/install-browser.sh" ]; then bash "$here/install-browser.sh"; fi
# transformers serve on the CPU: torch 2.13.0 is the CPU build that lies on this kind of machine.
if [ -f "$here/install-realserver.sh" ]; then bash "$here/install-realserver.sh" "$BIN"; fi
