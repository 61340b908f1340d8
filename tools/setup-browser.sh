#!/usr/bin/env bash
# Make sure Debian's headless Chromium is installed for the browser tests (driven by Playwright's Python
# package with executable_path=/usr/bin/chromium: no browser download). Needs root or sudo the first time.
set -euo pipefail
# The JavaScript tests (node --test tests/js/, run by tests/prompt/test_prompt_tags.py) need node 18+.
if [ -x /usr/bin/chromium ] && command -v node >/dev/null; then
  exit 0
fi
echo "installing chromium and nodejs (Debian packages, for the browser and JavaScript tests)…"
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then
  sudo_cmd="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -q >/dev/null
$sudo_cmd apt-get install -y -q chromium >/dev/null
command -v node >/dev/null || $sudo_cmd apt-get install -y -q nodejs >/dev/null
echo "chromium installed: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
