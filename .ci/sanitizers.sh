#!/usr/bin/env bash
# Sanitizer builds (issue 14), run by .ci/run after the main tests: the CPU kernels and the
# emulated CUDA kernels (batchgan_ext._C and ._emulated, CPU-only) built once per variant with
# BATCHGAN_SANITIZE (see setup.py), then the op tests run against that build:
#   asan  address,undefined: ASan + UBSan (a UBSan finding aborts the process)
#   tsan  thread: ThreadSanitizer, with two OpenMP threads so the CPU kernels' parallel_for runs
#         concurrently
# Each variant builds in place in its own copy of the checkout's files under
# $BATCHGAN_SANITIZER_DIR (default build-sanitizers/, git-ignored), so the normal build is never
# touched; the copy keeps its build/ folder, so a second run recompiles only changed sources.
# Before the tests, each variant checks that the extensions are instrumented and that a planted
# bug (.ci/sanitizer_canary.cpp) is reported under exactly the tests' runtime and options, so a
# green run is not vacuous. Python, torch and libgomp are not instrumented: the sanitizer runtime
# is preloaded (the extensions need it first), and no suppression is needed: uninstrumented code
# records no accesses, and libgomp's ordering is declared to TSan by .ci/tsan_openmp.cpp.
#   bash .ci/sanitizers.sh             both variants
#   bash .ci/sanitizers.sh tsan        one variant (asan, tsan)
# Variables: PY (default .venv/bin/python), MAX_JOBS (default 2). Exits non-zero on any report.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
PY="${PY:-$REPO_ROOT/.venv/bin/python}"
OUT="${BATCHGAN_SANITIZER_DIR:-$REPO_ROOT/build-sanitizers}"
export MAX_JOBS="${MAX_JOBS:-2}"
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(asan tsan)
START=$(date +%s)
fail() { echo "[sanitizers] FAILED: $*"; exit 1; }

# The op tests: every CPU and emulated kernel, forward and backward, and the emulator's own tests.
TESTS=(
  python_tests/test_mix.py
  python_tests/test_bernoulli_kl_loss.py
  python_tests/test_equivariant.py
  python_tests/test_minibatch_stddev.py
  python_tests/test_pairwise_l1_features.py
  python_tests/test_emulator.py
)

# A fresh copy of the checkout's files (tracked and untracked-but-not-ignored, as they are in the
# work tree) in $1, keeping $1/build; cp -p keeps mtimes, so ninja skips unchanged objects.
copy_tree() {
  local dst="$1"
  mkdir -p "$dst"
  find "$dst" -mindepth 1 -maxdepth 1 ! -name build -exec rm -rf {} +
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | xargs -0 cp -p --parents -t "$dst"
}

# Runs Python code $2 in the variant's build ($dst, $run_env) and expects it to fail with a
# report matching $1.
expect_report() {
  local pattern="$1" code="$2" log
  log="$(mktemp)"
  if (cd "$dst" && env "${run_env[@]}" PYTHONPATH="$dst" "$PY" -c "$code") > "$log" 2>&1; then
    cat "$log"; rm -f "$log"; fail "planted bug not reported (expected: $pattern)"
  fi
  grep -q -- "$pattern" "$log" || { cat "$log"; rm -f "$log"; fail "planted bug: no '$pattern' in the output"; }
  echo "[sanitizers]   planted bug reported: $(grep -m1 -- "$pattern" "$log" | sed 's/^=*[0-9]*=*//')"
  rm -f "$log"
}

# Both variants set OMP_WAIT_POLICY=passive: a sanitized run is slow and may share its cores, and
# libgomp's spinning workers (torch's own kernels, e.g. the float64 reference convolutions) then
# starve the thread they wait for (seen here: an ASan run of test_equivariant sat for over 15 minutes at one test,
# both threads busy, the main one in libgomp's barrier after torch's slow_conv2d).
run_variant() {
  local variant="$1" sanitize marker dst t0
  local -a run_env canaries emulated_races=() deselect=()
  case "$variant" in
    asan)
      sanitize="address,undefined"
      dst="$OUT/asan-ubsan"
      marker="__asan_init"
      # detect_leaks=0: the interpreter keeps its objects alive at exit by design (LeakSanitizer
      # would report them, not our code). UBSan's checks are fatal at compile time
      # (-fno-sanitize-recover); halt_on_error also stops at the first runtime report.
      run_env=(
        "LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
        "ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:check_initialization_order=1:strict_init_order=1"
        "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1"
        "OMP_WAIT_POLICY=passive"
      )
      canaries=("heap-buffer-overflow:canary_heap_overflow" "signed integer overflow:canary_signed_overflow")
      ;;
    tsan)
      sanitize="thread"
      dst="$OUT/tsan"
      marker="__tsan_init"
      # Two OpenMP threads: the CPU kernels' at::parallel_for regions run concurrently, which is
      # what TSan is here to check; .ci/tsan_openmp.cpp tells TSan how a region is ordered.
      run_env=(
        "LD_PRELOAD=$(gcc -print-file-name=libtsan.so):$dst/tsan_openmp.so"
        "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1"
        "OMP_NUM_THREADS=2"
        "OMP_WAIT_POLICY=passive"
      )
      canaries=("data race:canary_data_race" "data race:canary_openmp_race")
      # The emulator's planted races (a missing barrier before a shared-memory read, every thread
      # writing one global element) are real races: TSan must report them. Their tests, which
      # check that the schedule exposes them, are run by the asan variant and the main tests.
      emulated_races=(missing_barrier global_write)
      deselect=(
        --deselect python_tests/test_emulator.py::test_planted_shared_memory_races_are_exposed
        --deselect python_tests/test_emulator.py::test_planted_global_write_race_depends_on_the_schedule
        --deselect python_tests/test_emulator.py::test_a_barrier_switched_off_at_run_time_breaks_the_kernel
      )
      ;;
    *) fail "unknown variant '$variant' (asan, tsan)" ;;
  esac
  t0=$(date +%s)
  echo "[sanitizers] $(date '+%H:%M:%S') $variant: building (BATCHGAN_SANITIZE=$sanitize, MAX_JOBS=$MAX_JOBS) in $dst"
  copy_tree "$dst"
  # CI exports BATCHGAN_FORCE_CUDA=1 for the main build; the sanitizer builds are CPU-only.
  if ! (cd "$dst" && env -u BATCHGAN_FORCE_CUDA -u BATCHGAN_FORCE_CPU BATCHGAN_SANITIZE="$sanitize" \
    "$PY" setup.py build_ext --inplace > "$OUT/$variant.build.log" 2>&1); then
    tail -n 80 "$OUT/$variant.build.log"
    fail "$variant build (full log: $OUT/$variant.build.log)"
  fi
  grep -E "^\[batchgan_ext\]   (backends|sanitize):" "$OUT/$variant.build.log" | sort -u | sed 's/^/[sanitizers]   /'
  echo "[sanitizers] $(date '+%H:%M:%S') $variant: built in $(( $(date +%s) - t0 )) s"

  # The extensions really are instrumented (a build that silently dropped the flags would pass).
  local so
  for so in "$dst"/batchgan_ext/_C*.so "$dst"/batchgan_ext/_emulated*.so; do
    [ -e "$so" ] || fail "$variant: $(basename "$so") was not built"
    # grep without -q reads nm's whole output: -q would exit at the first match and, under
    # pipefail, nm's SIGPIPE would fail the check.
    nm -D --undefined-only "$so" | grep "$marker" > /dev/null || fail "$variant: $(basename "$so") has no $marker"
  done

  # Planted bugs, compiled with the extensions' sanitizer flags and run under the tests' environment.
  local -a canary_flags=("-fsanitize=$sanitize" -fno-omit-frame-pointer -g -O1)
  if [ "$variant" = asan ]; then canary_flags+=(-fno-sanitize-recover=undefined); fi
  g++ -std=c++20 -shared -fPIC -pthread -fopenmp "${canary_flags[@]}" -o "$dst/canary.so" .ci/sanitizer_canary.cpp
  if [ "$variant" = tsan ]; then
    g++ -std=c++20 -shared -fPIC -O2 -o "$dst/tsan_openmp.so" .ci/tsan_openmp.cpp -ldl
  fi
  local c
  for c in "${canaries[@]}"; do
    expect_report "${c%%:*}" "import ctypes; ctypes.CDLL('$dst/canary.so').${c#*:}(1)"
  done
  for c in "${emulated_races[@]}"; do
    expect_report "data race" "import torch, batchgan_ext._emulated as emu
values = torch.zeros(16, dtype=torch.int32) if '$c' == 'global_write' else torch.ones(4, 128, dtype=torch.int32)
emu._selftest_race('$c', values, 64 if '$c' == 'global_write' else 128)"
  done

  echo "[sanitizers] $(date '+%H:%M:%S') $variant: op tests"
  t0=$(date +%s)
  # --capture=sys: a sanitizer writes its report to fd 2 and aborts the process, so pytest's
  # default fd-level capture would swallow the report with the process.
  (cd "$dst" && env "${run_env[@]}" PYTHONPATH="$dst" "$PY" -m pytest -q -p no:cacheprovider --capture=sys --durations=5 \
    "${deselect[@]}" "${TESTS[@]}") \
    || fail "$variant: op tests, exit status $? (a sanitizer report above, a failing test, or a crash: 139 is SIGSEGV)"
  echo "[sanitizers] $(date '+%H:%M:%S') $variant: op tests clean in $(( $(date +%s) - t0 )) s"
}

for v in "${VARIANTS[@]}"; do
  run_variant "$v"
done
echo "[sanitizers] $(date '+%H:%M:%S') ${VARIANTS[*]}: clean in $(( $(date +%s) - START )) s"
