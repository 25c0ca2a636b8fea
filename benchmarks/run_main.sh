#!/usr/bin/env bash
# The main job (README's first command): set up .venv and build batchgan_ext, run the kernel
# benchmarks (quick mode; `python benchmarks/run_all.py` for the full tables), then the 2D
# mode-dropping demo: every method on grid25 and ring8 with the same budget and one seed, two runs
# at a time, with the null rows (a preview of the README's results table, which comes from
# `python -m batchgan_ext.train.sweep --preset results`), then the image demo: standard and M-BGAN
# on stacked digits for 150 steps (the image-demo preset: the pipeline, not a result). Tables are
# printed; JSON goes to benchmarks/results/, plots and metrics to outputs/demo/ and
# outputs/image-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/setup_env.sh
MAIN_START=$(date +%s)
echo "[main] $(date '+%H:%M:%S') kernel benchmarks"
"$PY" benchmarks/run_all.py --quick
echo "[main] $(date '+%H:%M:%S') 2D mode-dropping demo"
# From outside the checkout: in its root, `python -m` would import the package's sources (which
# have no compiled extension) instead of the build installed in .venv.
DEMO_OUT="$PWD/outputs/demo"
(cd / && "$PY" -m batchgan_ext.train.demo --out "$DEMO_OUT" --no-progress "$@")
echo "[main] $(date '+%H:%M:%S') image demo (stacked digits)"
IMAGE_OUT="$PWD/outputs/image-demo"
(cd / && "$PY" -m batchgan_ext.train --dataset stacked-digits --method standard,mbgan --preset image-demo \
  --out "$IMAGE_OUT" --no-progress)
echo "[main] $(date '+%H:%M:%S') done: benchmarks + demo in $(( $(date +%s) - MAIN_START )) s (after setup)"
