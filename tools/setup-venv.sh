#!/usr/bin/env bash
# Create (or update) the venv with everything the tests, the CLI demo and the benchmarks need: the runtime
# (tools/setup-runtime.sh), then the test stack of requirements-test.txt (pytest, ruff, mypy, playwright,
# hypothesis, the pinned torch) and A1111's ldm code. Idempotent: silent when already set up; otherwise pip's
# own progress shows, so a first run never looks stuck. HYPERNET_VENV and PYTHON as in tools/setup-runtime.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HYPERNET_VENV:-.venv}
tools/setup-runtime.sh
stamp=$VENV/.requirements-stamp
want=$(cat requirements.txt requirements-panel.txt requirements-test.txt tools/setup-venv.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  pip=("$VENV/bin/python" -m pip install --disable-pip-version-check)
  echo "setup-venv: installing the test requirements (requirements-test.txt)" >&2
  "${pip[@]}" -r requirements-test.txt
  echo "setup-venv: installing A1111's ldm code (stable-diffusion-sdkit==2.1.5, --no-deps)" >&2
  "${pip[@]}" --no-deps stable-diffusion-sdkit==2.1.5
  echo "$want" > "$stamp"
  echo "setup-venv: done" >&2
fi
