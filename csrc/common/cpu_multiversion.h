// Runtime choice of the instruction set for the CPU kernels' inner loops. The build targets
// the x86-64 baseline (SSE2: 4 floats a vector), so that the wheel runs on any x86-64 CPU; a
// loop marked BATCHGAN_CPU_MULTIVERSION is compiled three times, for x86-64-v4 (AVX-512: 16
// floats a vector), x86-64-v3 (AVX2 + FMA: 8) and the baseline, and an ifunc picks one at load
// time, as ATen's own CPU kernels are picked at run time (DispatchStub). noinline: a clone is
// only reached through its ifunc, so each marked function should cover a whole run of
// elements, which amortises the indirect call.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BATCHGAN_CPU_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) __attribute__((noinline))
#else
#define BATCHGAN_CPU_MULTIVERSION inline
#endif
