#!/usr/bin/env bash
# Create (or update) .venv with everything the tests, the CLI demo and the benchmarks need.
# Idempotent and quiet when already set up.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements-stamp
want=$(cat requirements.txt requirements-test.txt tools/setup-venv.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt
  # A1111's ldm attention/UNet code, without its heavy training dependencies.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps stable-diffusion-sdkit==2.1.5
  echo "$want" > "$stamp"
fi
