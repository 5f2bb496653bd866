#!/usr/bin/env bash
# Headless Chromium for the web UI test, from Debian's archive. Idempotent; run as root.
# Playwright drives this binary (executable_path); it never downloads a browser of its own.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium
/usr/bin/chromium --version
