#!/usr/bin/env bash
# Run the whole test suite (sets up .venv on first use): ruff, mypy on lib_hypernet/, pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-venv.sh
VENV=${HYPERNET_VENV:-.venv}
tools/setup-browser.sh
echo "ruff check ." >&2
"$VENV"/bin/python -m ruff check .
echo "mypy lib_hypernet (config: pyproject.toml [tool.mypy])" >&2
"$VENV"/bin/python -m mypy lib_hypernet
"$VENV"/bin/python -m pytest -q "$@"
