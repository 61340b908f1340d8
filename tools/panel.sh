#!/usr/bin/env bash
# The main job: set up .venv (the first run installs torch and gradio, a few minutes), then open the
# hypernetwork library panel in a browser on this machine (http://127.0.0.1:7860).
# Without --dir it opens a small example folder (examples/, about 4 MB, made on first run).
#   tools/panel.sh                         # the examples
#   tools/panel.sh --dir ~/sd/models/hypernetworks [--port 7861] [--no-browser]
#   tools/panel.sh --host 0.0.0.0 --auth USER:PASSWORD     # reachable from other machines, with a login
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-venv.sh
exec .venv/bin/python -m lib_hypernet.ui "$@"
