#!/usr/bin/env bash
# The day a GPU is lent: build for the GPU found, then every check that needs it, in <= 8 minutes
# on one H100-class GPU (stages and budget: benchmarks/gpu_check.py, which does the work):
#   bash benchmarks/gpu_check.sh [--budget-scale F] [--no-compile] [--only tests,graph]
#   bash benchmarks/gpu_check.sh --dry-run    the CPU-side logic of every stage, no GPU, no build (CI)
# Writes benchmarks/results/gpu_check.json and prints each stage's time and a table. Without a
# CUDA device it exits 2 with an explanation before building anything.
#   PY   the python to use (default .venv/bin/python; the dry run imports the package it finds there)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-$PWD/.venv/bin/python}"

for arg in "$@"; do
  if [ "$arg" = "--dry-run" ]; then
    exec "$PY" benchmarks/gpu_check.py "$@"
  fi
done

# No GPU, no build: gpu_check.py needs only the standard library to look (torch or nvidia-smi).
PREFLIGHT_PY="$PY"
[ -x "$PREFLIGHT_PY" ] || PREFLIGHT_PY=python3
ARCH_LIST="$("$PREFLIGHT_PY" benchmarks/gpu_check.py --arch-list)" || exit $?

echo "[gpu_check] $(date '+%H:%M:%S') build: TORCH_CUDA_ARCH_LIST=$ARCH_LIST (the GPUs found)"
BUILD_START=$(date +%s)
export TORCH_CUDA_ARCH_LIST="$ARCH_LIST" BATCHGAN_FORCE_CUDA=1
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
source .ci/setup_env.sh  # creates .venv if needed, builds and installs the package; sets PY
BUILD_SECONDS=$(( $(date +%s) - BUILD_START ))
echo "[gpu_check] build: done in ${BUILD_SECONDS} s"
exec "$PY" benchmarks/gpu_check.py --build-seconds "$BUILD_SECONDS" "$@"
