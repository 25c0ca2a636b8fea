#!/usr/bin/env bash
# The main job (README's first command): set up .venv and build batchgan_ext, then run the
# kernel benchmark suite, which prints its tables and writes benchmarks/results/*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/setup_env.sh
echo "[main] $(date '+%H:%M:%S') kernel benchmarks"
"$PY" benchmarks/run_all.py "$@"
echo "[main] $(date '+%H:%M:%S') done"
