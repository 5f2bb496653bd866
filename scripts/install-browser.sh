#!/usr/bin/env bash
# A Chrome/Chromium for the web UI test (Playwright drives it), chosen in this order:
#   1. Debian's chromium, when we are root and apt-get exists (installed if missing);
#   2. a Chrome/Chromium already on the machine (PATH, then the usual macOS folders);
#   3. Playwright's own browser download, where the network allows it;
#   4. none: the browser tests then skip (and fail under CI=true).
# Writes the chosen binary to $VENV/browser-path (empty when none); tests/browser.py reads
# it. Never fails: it says what it chose or skipped. $1 = the venv's bin folder.
# Bash builtins only apart from `id`, apt-get and the venv's python, so that the tests can
# run it with a PATH of their own (tests/unit/test_install_scripts.py).
set -uo pipefail
BIN=${1:-.venv/bin}
VENV=${BIN%/*}
[ "$VENV" = "$BIN" ] && VENV=.
OUT="$VENV/browser-path"
DEBIAN_CHROMIUM=${LLM_USERS_DEBIAN_CHROMIUM:-/usr/bin/chromium}
CANDIDATES=(chromium chromium-browser google-chrome google-chrome-stable chrome)
MAC_APPS=(
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
    "/Applications/Chromium.app/Contents/MacOS/Chromium"
)

choose() {  # $1 = binary, $2 = how it was found
    printf '%s\n' "$1" >"$OUT" || echo "install: browser: could not write $OUT"
    echo "install: browser: $1 ($2)"
    exit 0
}

uid=$(id -u 2>/dev/null || echo unknown)
# 1. Debian's package, as root
if [ "$uid" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    if [ -x "$DEBIAN_CHROMIUM" ]; then
        choose "$DEBIAN_CHROMIUM" "Debian's chromium, already installed"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -q && apt-get install -y -q --no-install-recommends chromium &&
        [ -x "$DEBIAN_CHROMIUM" ]; then
        choose "$DEBIAN_CHROMIUM" "Debian's chromium, installed with apt-get"
    fi
    echo "install: browser: apt-get could not install chromium; looking further"
fi
# 2. one already on the machine
for name in "${CANDIDATES[@]}"; do
    if found=$(command -v "$name" 2>/dev/null) && [ -x "$found" ]; then
        choose "$found" "found on PATH"
    fi
done
for app in "${MAC_APPS[@]}"; do
    if [ -x "$app" ]; then choose "$app" "found in /Applications"; fi
done
# 3. Playwright's own download (needs the network to its download host)
limit=()
if command -v timeout >/dev/null 2>&1; then limit=(timeout 300); fi
if [ -x "$BIN/python" ] &&
    "${limit[@]}" "$BIN/python" -m playwright install chromium >/dev/null 2>&1; then
    if found=$("$BIN/python" -c '
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    print(p.chromium.executable_path)' 2>/dev/null) && [ -x "$found" ]; then
        choose "$found" "downloaded by playwright install chromium"
    fi
fi
# 4. none
: >"$OUT" 2>/dev/null || true  # empty: no browser
why="not root with apt-get, no chrome/chromium on PATH, playwright could not download one"
echo "install: browser: skipped ($why): the web UI tests will skip (fail under CI=true)"
exit 0
