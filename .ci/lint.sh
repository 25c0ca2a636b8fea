#!/usr/bin/env bash
# The style gate, run by .ci/run before the build: ruff (lint + format check) over the Python
# tree and clang-format over csrc/, with the tool versions pinned here and installed into the
# venv by this script. Exits non-zero on any lint or format error.
#   bash .ci/lint.sh          check (CI)
#   bash .ci/lint.sh --fix    apply ruff's safe fixes and both formatters
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
RUFF_VERSION="0.17.6"
CLANG_FORMAT_VERSION="23.1.3"
PY="${PY:-$REPO_ROOT/.venv/bin/python}"
VENV_BIN="$(dirname "$PY")"

if ! "$VENV_BIN/ruff" --version 2>/dev/null | grep -qx "ruff $RUFF_VERSION" \
  || ! "$VENV_BIN/clang-format" --version 2>/dev/null | grep -q "version $CLANG_FORMAT_VERSION"; then
  "$PY" -m pip install -q "ruff==$RUFF_VERSION" "clang-format==$CLANG_FORMAT_VERSION"
fi
mapfile -t CXX_FILES < <(git ls-files 'csrc/*.h' 'csrc/*.cpp' 'csrc/*.cu' 'csrc/*.cuh')

if [ "${1:-}" = "--fix" ]; then
  "$VENV_BIN/ruff" check --fix .
  "$VENV_BIN/ruff" format .
  "$VENV_BIN/clang-format" -i "${CXX_FILES[@]}"
  exit 0
fi
status=0
echo "[lint] ruff $RUFF_VERSION check"
"$VENV_BIN/ruff" check --no-cache . || status=1
echo "[lint] ruff $RUFF_VERSION format --check"
"$VENV_BIN/ruff" format --no-cache --check . || status=1
echo "[lint] clang-format $CLANG_FORMAT_VERSION --dry-run -Werror (${#CXX_FILES[@]} files)"
"$VENV_BIN/clang-format" --dry-run -Werror "${CXX_FILES[@]}" || status=1
if [ "$status" -ne 0 ]; then
  echo "[lint] FAILED: run 'bash .ci/lint.sh --fix' and fix what remains by hand"
fi
exit "$status"
