// Kernels that test the CPU emulator itself: one correct block reduction, and deliberate
// barrier misuses that the emulator must report as errors (never pass silently).
#pragma once

#include <ATen/ATen.h>

#include "device/device_api.h"

namespace batchgan {
namespace emulator_selftest {

// Sums of `n` values per block, through warp_reduce_sum and __syncthreads (block_reduce_sum).
__global__ void block_sums_kernel(const double* values, int64_t n, double* sums) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += values[blockIdx.x * n + i];
  acc = block_reduce_sum(acc);
  if (threadIdx.x == 0) sums[blockIdx.x] = acc;
}

// Threads of one block wait at two different __syncthreads() sites.
__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

// Half the block returns before a barrier the other half waits at.
__global__ void early_return_barrier_kernel(int* out) {
  if (threadIdx.x >= blockDim.x / 2) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

// A warp collective that only part of a warp reaches.
__global__ void partial_warp_reduce_kernel(double* out) {
  if (threadIdx.x < 16) {
    out[threadIdx.x] = warp_reduce_sum(1.0);
  }
}

// A shared-memory tile written by every thread and read by a neighbour after the barrier:
// correct only if all writes precede all reads (it checks the barrier really blocks).
__global__ void shared_tile_rotate_kernel(const int* in, int* out) {
  __shared__ int tile[1024];
  const int t = threadIdx.x;
  tile[t] = in[blockIdx.x * blockDim.x + t];
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = tile[(t + 1) % blockDim.x];
}

inline at::Tensor block_sums(const at::Tensor& values, int64_t threads) {
  TORCH_CHECK(values.dim() == 2 && values.scalar_type() == at::kDouble, "values: expected a 2-d float64 tensor");
  const at::Tensor v = values.contiguous();
  at::Tensor sums = at::empty({v.size(0)}, v.options());
  LaunchConfig cfg;
  cfg.grid[0] = static_cast<unsigned>(v.size(0));
  cfg.block[0] = static_cast<unsigned>(threads);
  BATCHGAN_LAUNCH_KERNEL(block_sums_kernel, cfg, v.const_data_ptr<double>(), v.size(1),
                         sums.mutable_data_ptr<double>());
  return sums;
}

inline at::Tensor shared_tile_rotate(const at::Tensor& values, int64_t threads) {
  TORCH_CHECK(values.scalar_type() == at::kInt && values.numel() % threads == 0, "values: bad input");
  const at::Tensor v = values.contiguous();
  at::Tensor out = at::empty_like(v);
  LaunchConfig cfg;
  cfg.grid[0] = static_cast<unsigned>(v.numel() / threads);
  cfg.block[0] = static_cast<unsigned>(threads);
  BATCHGAN_LAUNCH_KERNEL(shared_tile_rotate_kernel, cfg, v.const_data_ptr<int>(), out.mutable_data_ptr<int>());
  return out;
}

// Runs one of the misuse kernels; the emulator is expected to throw.
inline void run_misuse(const std::string& which, int64_t threads) {
  std::vector<int> ints(threads, 0);
  std::vector<double> doubles(threads, 0);
  LaunchConfig cfg;
  cfg.grid[0] = 2;
  cfg.block[0] = static_cast<unsigned>(threads);
  if (which == "divergent") {
    BATCHGAN_LAUNCH_KERNEL(divergent_barrier_kernel, cfg, ints.data());
  } else if (which == "early_return") {
    BATCHGAN_LAUNCH_KERNEL(early_return_barrier_kernel, cfg, ints.data());
  } else if (which == "partial_warp") {
    BATCHGAN_LAUNCH_KERNEL(partial_warp_reduce_kernel, cfg, doubles.data());
  } else {
    TORCH_CHECK(false, "which: unknown misuse '", which, "'");
  }
}

}  // namespace emulator_selftest
}  // namespace batchgan
