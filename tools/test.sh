#!/usr/bin/env bash
# Run the whole test suite (sets up .venv on first use). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-venv.sh
tools/setup-browser.sh
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest -q "$@"
