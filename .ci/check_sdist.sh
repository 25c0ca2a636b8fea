#!/usr/bin/env bash
# Checks that the sdist is complete and builds on its own: it holds every tracked file under csrc/ and no build
# output, and a package built from it (from an unpacked copy, so nothing of the checkout helps) imports from / and
# runs an op.
#   bash .ci/check_sdist.sh PYTHON SDIST   (CI) SDIST is the sdist .ci/setup_env.sh built and installed the package
#                                          from: check its contents and that the installed package came from it.
#   bash .ci/check_sdist.sh [PYTHON]       (by hand) build an sdist, check it, build a CPU-only wheel from it
#                                          (BATCHGAN_FORCE_CPU=1, no emulated module) and run an op from that wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute, but not resolved: a venv's python is a symlink
SDIST="${2:-}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "[sdist] FAILED: $*"; exit 1; }

if [ -z "$SDIST" ]; then
  "$PY" -m build --sdist --no-isolation --outdir "$WORK/dist" . > "$WORK/sdist.log" 2>&1 \
    || { tail -n 60 "$WORK/sdist.log"; fail "python -m build --sdist"; }
  SDIST="$(ls "$WORK"/dist/*.tar.gz)"
fi
SDIST="$(cd "$(dirname "$SDIST")" && pwd)/$(basename "$SDIST")"  # as .ci/setup_env.sh names it
TOP="$(basename "$SDIST" .tar.gz)"
echo "[sdist] $(basename "$SDIST") ($(du -k "$SDIST" | cut -f1) kB)"

tar -tzf "$SDIST" | sed "s|^$TOP/||" | sort > "$WORK/sdist_files"
git ls-files csrc | sort > "$WORK/csrc_files"
[ -s "$WORK/csrc_files" ] || fail "git ls-files csrc listed nothing (not a git checkout?)"
MISSING="$(comm -23 "$WORK/csrc_files" "$WORK/sdist_files")"
[ -z "$MISSING" ] || fail "files under csrc/ missing from the sdist:"$'\n'"$MISSING"
for f in pyproject.toml setup.py MANIFEST.in README.md CMakeLists.txt PKG-INFO; do
  grep -qx "$f" "$WORK/sdist_files" || fail "$f missing from the sdist"
done
OUTPUTS="$(grep -E '\.(so|o|pyc)$' "$WORK/sdist_files" || true)"
[ -z "$OUTPUTS" ] || fail "build outputs in the sdist:"$'\n'"$OUTPUTS"
echo "[sdist] holds all $(wc -l < "$WORK/csrc_files") files under csrc/ and no build output"

if [ -n "${2:-}" ]; then
  SITE=""  # the installed package
else
  tar -xzf "$SDIST" -C "$WORK"
  (cd "$WORK/$TOP" && BATCHGAN_FORCE_CPU=1 BATCHGAN_BUILD_EMULATED=0 MAX_JOBS="${MAX_JOBS:-2}" \
    "$PY" -m pip wheel --no-build-isolation --no-deps -w "$WORK/wheel" . > "$WORK/wheel.log" 2>&1) \
    || { tail -n 80 "$WORK/wheel.log"; fail "building a wheel from the unpacked sdist"; }
  SITE="$WORK/site"
  "$PY" -m zipfile -e "$WORK"/wheel/*.whl "$SITE"
  echo "[sdist] built $(basename "$WORK"/wheel/*.whl) from the unpacked sdist (CPU kernels)"
fi

(cd / && PYTHONPATH="$SITE" "$PY" - "$SITE" "$SDIST" <<'EOF'
import importlib.metadata
import json
import os
import sys

import torch

import batchgan_ext

site, sdist = sys.argv[1], sys.argv[2]
top = os.path.basename(sdist)[: -len(".tar.gz")]
assert top == "batchgan_ext-" + batchgan_ext.__version__, f"sdist {top} vs __version__ {batchgan_ext.__version__}"
if site:
    origin = "the wheel built from it"
    assert batchgan_ext.__file__.startswith(site + os.sep), f"imported {batchgan_ext.__file__}, not the sdist's build"
else:
    origin = "the installed package"
    url = json.loads(importlib.metadata.distribution("batchgan_ext").read_text("direct_url.json") or "{}").get("url")
    assert url == "file://" + sdist, f"the installed batchgan_ext was built from {url}, not from {sdist}"
x = torch.randn(6, 3, dtype=torch.float64)
torch.testing.assert_close(batchgan_ext.set_mean(x, num_sets=2), x.view(2, 3, 3).mean(1))
print(f"[sdist] {origin}: batchgan_ext {batchgan_ext.__version__}, backends {batchgan_ext.build_info()['backends']}, "
      "set_mean matches torch")
EOF
)
