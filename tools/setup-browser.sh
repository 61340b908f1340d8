#!/usr/bin/env bash
# Make sure Debian's headless Chromium is installed for the browser tests (driven by Playwright's Python
# package with executable_path=/usr/bin/chromium: no browser download). Needs root or sudo the first time.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "installing chromium (Debian package, for the browser tests)…"
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then
  sudo_cmd="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -q >/dev/null
$sudo_cmd apt-get install -y -q chromium >/dev/null
echo "chromium installed: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
