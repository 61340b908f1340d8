#!/usr/bin/env bash
# The main job: set up the runtime venv (tools/setup-runtime.sh: torch, safetensors, gradio; the first run is
# about as long as torch's install), then open the hypernetwork library panel in a browser on this machine.
# Without --dir it opens a small example folder (examples/, about 5 MB, made on first run).
#   tools/panel.sh                         # the examples
#   tools/panel.sh --dir ~/sd/models/hypernetworks [--port 7861] [--theme dark] [--no-browser]
#   tools/panel.sh --host 0.0.0.0 --auth USER:PASSWORD     # reachable from other machines, with a login
#   tools/panel.sh --checkpoints ~/sd/models/Stable-diffusion   # also Bake (LoRA files, merged checkpoints)
#   HYPERNET_VENV=/path/to/venv TORCH_SPEC="torch==2.1.2" tools/panel.sh   # another venv, another torch
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-runtime.sh
exec "${HYPERNET_VENV:-.venv}/bin/python" -m lib_hypernet.ui "$@"
