# Sourced by .ci/run and benchmarks/run_main.sh: creates .venv (if missing), installs the
# dependencies and builds + installs batchgan_ext from a clean build directory.
# Variables:
#   BATCHGAN_TORCH   torch requirement (default torch==2.14.1, the CUDA 13.0 build; a CPU
#                    build such as torch==2.13.0 works too, then only CPU kernels are built)
#   BATCHGAN_FORCE_CPU / BATCHGAN_FORCE_CUDA   see setup.py
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
VENV="$REPO_ROOT/.venv"
PY="$VENV/bin/python"
TORCH_REQ="${BATCHGAN_TORCH:-torch==2.14.1}"

echo "[setup] $(date '+%H:%M:%S') python venv at $VENV"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
"$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
echo "[setup] $(date '+%H:%M:%S') installing $TORCH_REQ and the build dependencies"
# (pip's notes about this machine's unused local index folders are filtered out)
{ "$PY" -m pip install -q "$TORCH_REQ" numpy pybind11 ninja "setuptools>=77" wheel build 2>&1; } \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
# The CUDA toolkit root: nvcc on PATH may be a wrapper outside it.
if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDA_HOME=/usr/local/cuda
fi
export MAX_JOBS="${MAX_JOBS:-2}"
echo "[setup] $(date '+%H:%M:%S') building the sdist, then batchgan_ext from it (clean build directories)"
# Installing from the sdist (as `python -m build` does) builds the package from an unpacked copy that holds only what
# the sdist carries, so a header missing from it fails here; .ci/check_sdist.sh checks the sdist itself.
rm -rf "$REPO_ROOT/build" "$REPO_ROOT/dist"
"$PY" -m pip uninstall -q -y batchgan_ext >/dev/null 2>&1 || true
SDIST_LOG="$VENV/batchgan_sdist.log"
if ! "$PY" -m build --sdist --no-isolation --outdir "$REPO_ROOT/dist" "$REPO_ROOT" > "$SDIST_LOG" 2>&1; then
  tail -n 60 "$SDIST_LOG"
  echo "[setup] building the sdist FAILED (full log: $SDIST_LOG)"
  exit 1
fi
SDIST="$(ls "$REPO_ROOT"/dist/batchgan_ext-*.tar.gz)"
BUILD_LOG="$VENV/batchgan_build.log"
# With the extras the tests and the main job need: train (matplotlib, tqdm, scikit-learn, scipy), test (pytest,
# hypothesis); torch and numpy are installed above and satisfy the package's own requirements. --no-cache-dir:
# pip's wheel cache keys a file:// sdist by name and version, so a changed tree of the same version would install
# the stale cached wheel.
if ! "$PY" -m pip install -v --no-cache-dir --no-build-isolation "batchgan_ext[train,test] @ file://$SDIST" \
  > "$BUILD_LOG" 2>&1; then
  tail -n 150 "$BUILD_LOG"
  echo "[setup] building batchgan_ext FAILED (full log: $BUILD_LOG)"
  exit 1
fi
# The resolved build configuration (setup.py prints it once per build hook).
grep -E "^\s*\[batchgan_ext\]" "$BUILD_LOG" | sed 's/^ *//' | awk '!seen[$0]++' || true
# Fail here, with the build log's verdict, if the extension did not build or import.
(cd / && "$PY" -c "import batchgan_ext, json; print('[setup] build_info:', json.dumps(batchgan_ext.build_info()))")
echo "[setup] $(date '+%H:%M:%S') done"
