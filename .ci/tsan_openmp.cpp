// OpenMP as a sync object ThreadSanitizer understands, for .ci/sanitizers.sh (preloaded after
// libtsan). libgomp is not instrumented and hands work to its pooled threads with futexes and
// atomics, so TSan sees no ordering between a parallel region and the code around it: every
// region after the first (the first is ordered by pthread_create) looks like a race between the
// caller's writes before it and the workers' reads in it, and between the workers' writes and the
// caller's reads after it. This wraps GOMP_parallel, which `#pragma omp parallel` compiles to (so
// at::parallel_for, inlined into the CPU kernels), and declares the two edges OpenMP guarantees:
// fork (what precedes the region happens before the body in every thread) and join (the body in
// every thread happens before what follows: a region ends with a barrier). Barriers inside a
// region are not modelled; at::parallel_for has none (one `omp parallel`, each thread its chunk),
// so a race between two threads' chunks is still reported.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}

namespace {

using GompParallel = void (*)(void (*)(void*), void*, unsigned, unsigned);

struct Region {
  void (*fn)(void*);
  void* data;
  char fork;  // addresses used as TSan sync objects
  char join;
};

void region_body(void* arg) {
  Region* region = static_cast<Region*>(arg);
  __tsan_acquire(&region->fork);
  region->fn(region->data);
  __tsan_release(&region->join);
}

// libgomp's own GOMP_parallel: from the libgomp already loaded (torch's, or the one a library
// opened with RTLD_LOCAL pulled in, which RTLD_NEXT would not search).
GompParallel real_gomp_parallel() {
  void* libgomp = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD);
  void* real = libgomp ? dlsym(libgomp, "GOMP_parallel") : nullptr;
  if (real == nullptr) {
    std::fprintf(stderr, "tsan_openmp: GOMP_parallel called but no libgomp.so.1 is loaded\n");
    std::abort();
  }
  return reinterpret_cast<GompParallel>(real);
}

}  // namespace

extern "C" void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags) {
  static const GompParallel real = real_gomp_parallel();
  Region region{fn, data, 0, 0};
  __tsan_release(&region.fork);
  real(region_body, &region, num_threads, flags);
  __tsan_acquire(&region.join);
}
