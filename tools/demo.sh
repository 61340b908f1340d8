#!/usr/bin/env bash
# The main job outside a webui: generate example hypernetworks on first run, then show what the CLI does.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-venv.sh
.venv/bin/python -m lib_hypernet examples --out examples
.venv/bin/python -m lib_hypernet info examples/*.pt examples/*.safetensors
.venv/bin/python -m lib_hypernet verify examples/*.pt examples/*.safetensors
