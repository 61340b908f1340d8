#!/usr/bin/env bash
# Create (or update) the venv the library panel runs in, with the runtime requirements only: torch,
# safetensors and gradio 3.41.2 with A1111 1.10.1's pins (requirements-panel.txt). pip's own progress shows;
# the first run is about as long as torch's download and install. Idempotent: silent when already set up.
#   HYPERNET_VENV  the venv's folder (default: .venv); pointing it at a webui's venv uses that webui's torch
#   TORCH_SPEC     what pip installs for torch when the venv has none (default: the pin of requirements-test.txt);
#                  e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" for the CPU-only wheels
#   PYTHON         the python that creates the venv (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HYPERNET_VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-$(grep -E '^torch==' requirements-test.txt)}
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $("$PY" --version 2>&1)" >&2
  "$PY" -m venv "$VENV"
fi
stamp=$VENV/.runtime-stamp
want=$(cat requirements.txt requirements-panel.txt tools/setup-runtime.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  pip=("$VENV/bin/python" -m pip install --disable-pip-version-check)
  # The webui owns torch: one already in the venv is kept, whatever its version.
  if ! "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then
    echo "setup: installing $TORCH_SPEC (the large download; set TORCH_SPEC to choose another build)" >&2
    # shellcheck disable=SC2086  # TORCH_SPEC may hold pip options, e.g. --index-url URL
    "${pip[@]}" $TORCH_SPEC
  fi
  echo "setup: installing the panel's requirements (requirements-panel.txt: safetensors, gradio 3.41.2)" >&2
  "${pip[@]}" -r requirements-panel.txt
  echo "$want" > "$stamp"
  echo "setup: done" >&2
fi
