#!/usr/bin/env bash
# Makes sure a Chromium exists for the browser fetch and the UI tests.
# Debian/Ubuntu as root: apt-get install chromium. Elsewhere: Playwright's own Chromium.
# B3_BROWSER_PATH, /usr/bin/chromium and Playwright's browser are found by the code itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${B3_BROWSER_PATH:-}" ] && [ -x "$B3_BROWSER_PATH" ]; then exit 0; fi
for b in /usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome; do
  [ -x "$b" ] && exit 0
done
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  .venv/bin/playwright install chromium
fi
