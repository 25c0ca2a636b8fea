// Planted bugs for .ci/sanitizers.sh, so that a clean sanitizer run is not vacuous: the script
// compiles this file with the flags setup.py gives the sanitized extensions, loads it with
// ctypes into the Python interpreter under the same preloaded runtime and options as the tests,
// calls one function per process and expects the sanitizer's report and a failing exit status.
// The arguments come from the caller so the compiler cannot fold the bugs away. Compiled with
// -fopenmp.
#include <climits>
#include <thread>

extern "C" {

// ASan: heap-buffer-overflow (called with n = 1: reads one element past the end). The size is
// a run-time value so that UBSan's object-size check, which would stop first, cannot see it.
int canary_heap_overflow(int n) {
  int* p = new int[3 + n]();
  const int v = p[3 + n];
  delete[] p;
  return v;
}

// UBSan: signed integer overflow (called with x = 1).
int canary_signed_overflow(int x) { return x + INT_MAX; }

// TSan: data race, two threads increment one int without synchronisation (called with n = 1).
int canary_data_race(int n) {
  int counter = 0;
  auto bump = [&] {
    for (int k = 0; k < n; ++k) ++counter;
  };
  std::thread a(bump), b(bump);
  a.join();
  b.join();
  return counter;
}

// TSan: data race inside an OpenMP region (called with n = 1), which must still be reported
// with .ci/tsan_openmp.cpp preloaded (it orders the region against the code around it, not the
// region's threads against each other).
int canary_openmp_race(int n) {
  int counter = 0;
#pragma omp parallel num_threads(2)
  counter += n;
  return counter;
}
}
