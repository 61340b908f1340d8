#!/usr/bin/env bash
# Long fuzzing run of lib_hypernet's file readers (hypothesis; see tests/helpers/fuzzing.py).
#   tools/fuzz.sh 15m            run rounds of 1000 examples with new seeds for 15 minutes
#   tools/fuzz.sh 90s 7          ... starting from seed 7
# Runs under nice, with one thread and a 4 GiB address-space limit; prints a line per round, then a JSON
# summary (examples, examples/s, max seconds per example, peak RSS growth, failures). Reproducers of any
# failure are saved in ${FUZZ_FAILURES:-fuzz-failures}/. Exit status 1 when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15m}
seed=${2:-1}
[ -x .venv/bin/python ] && .venv/bin/python -c "import hypothesis" 2>/dev/null || tools/setup-venv.sh
ulimit -v $((4 * 1024 * 1024))
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec nice -n 10 .venv/bin/python -W ignore tests/helpers/fuzzing.py --duration "$duration" --seed "$seed" \
  --examples 1000 --failures "${FUZZ_FAILURES:-fuzz-failures}" --progress
