#!/usr/bin/env bash
# Create (or update) .venv with everything the tests, the CLI demo and the benchmarks need.
# Idempotent: silent when already set up; otherwise it says what it installs (torch alone is a
# multi-minute download), so a first run never looks stuck.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup-venv: creating .venv with $("$PY" --version 2>&1)" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements-stamp
want=$(cat requirements.txt requirements-test.txt tools/setup-venv.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
  torch_pin=$(grep -E '^torch==' requirements-test.txt)
  echo "setup-venv: installing $torch_pin (a large download the first time)…" >&2
  "${pip[@]}" "$torch_pin"
  echo "setup-venv: installing the test requirements: $(grep -vE '^\s*(#|-r|$)' requirements-test.txt requirements.txt \
    | sed 's/^[^:]*://' | grep -v '^torch==' | tr '\n' ' ')…" >&2
  "${pip[@]}" -r requirements-test.txt
  echo "setup-venv: installing A1111's ldm code (stable-diffusion-sdkit==2.1.5, --no-deps)…" >&2
  "${pip[@]}" --no-deps stable-diffusion-sdkit==2.1.5
  echo "$want" > "$stamp"
  echo "setup-venv: done" >&2
fi
