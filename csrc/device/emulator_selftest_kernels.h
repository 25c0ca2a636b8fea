// Kernels that test the CPU emulator itself: correct kernels (block reductions, a shared tile
// read after a barrier), a trace of the schedule, deliberate barrier misuses that the emulator
// must report as errors (never pass silently), and planted races that its schedules (and a
// ThreadSanitizer build) must expose.
#pragma once

#include <ATen/ATen.h>

#include "device/device_api.h"

namespace batchgan {
namespace emulator_selftest {

// Sum and sum of squares of `n` values per block: two block_reduce_sum calls in a row, so the
// reduction's shared scratch is reused while other warps may still be reading it.
__global__ void block_sums_kernel(const double* values, int64_t n, double* sums) {
  double acc = 0, acc_sq = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double v = values[blockIdx.x * n + i];
    acc += v;
    acc_sq += v * v;
  }
  acc = block_reduce_sum(acc);
  acc_sq = block_reduce_sum(acc_sq);
  if (threadIdx.x == 0) {
    sums[2 * blockIdx.x] = acc;
    sums[2 * blockIdx.x + 1] = acc_sq;
  }
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
  BATCHGAN_SHARED(int, tile, [1024]);
  const int t = threadIdx.x;
  tile[t] = in[blockIdx.x * blockDim.x + t];
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = tile[(t + 1) % blockDim.x];
}

// Each block writes the first `written` slots of a shared tile and every thread reads its own
// slot: the other slots were never written by this block.
__global__ void shared_read_unwritten_kernel(float* out, int written) {
  BATCHGAN_SHARED(float, tile, [1024]);
  const int t = threadIdx.x;
  if (t < written) tile[t] = static_cast<float>(t);
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = tile[t];
}

// Where each thread of each block starts and where it passes its first barrier, in the
// emulator's order: trace[2 * (block * threads + t) + k] = the k-th event's rank.
__global__ void schedule_trace_kernel(int64_t* counter, int64_t* trace) {
  const int64_t slot = 2 * (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x);
  trace[slot] = atomicAdd(counter, int64_t(1));
  __syncthreads();
  trace[slot + 1] = atomicAdd(counter, int64_t(1));
}

// Planted races (the tests expect the emulator's schedules or TSan to expose each):
// the neighbour's shared slot read with no barrier after the writes;
__global__ void race_missing_barrier_kernel(const int* in, int* out) {
  BATCHGAN_SHARED(int, tile, [1024]);
  const int t = threadIdx.x;
  tile[t] = in[blockIdx.x * blockDim.x + t];
  out[blockIdx.x * blockDim.x + t] = tile[(t + kWarpSize) % blockDim.x];
}

// a tile rewritten for a second round while other warps may still read the first round;
__global__ void race_overwrite_before_read_kernel(const int* in, int* out) {
  BATCHGAN_SHARED(int, tile, [1024]);
  const int t = threadIdx.x;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * 2 * blockDim.x;
  int acc = 0;
  for (int round = 0; round < 2; ++round) {
    tile[t] = in[base + round * blockDim.x + t];
    __syncthreads();
    acc += tile[(t + kWarpSize) % blockDim.x] * (round + 1);
  }
  out[blockIdx.x * blockDim.x + t] = acc;
}

// every thread of a block writes the block's one output element.
__global__ void race_global_write_kernel(int* out) { out[blockIdx.x] = static_cast<int>(threadIdx.x); }

inline at::Tensor block_sums(const at::Tensor& values, int64_t threads) {
  TORCH_CHECK(values.dim() == 2 && values.scalar_type() == at::kDouble, "values: expected a 2-d float64 tensor");
  const at::Tensor v = values.contiguous();
  at::Tensor sums = at::empty({v.size(0), 2}, v.options());
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

inline at::Tensor shared_read_unwritten(int64_t blocks, int64_t threads, int64_t written) {
  at::Tensor out = at::empty({blocks, threads}, at::kFloat);
  LaunchConfig cfg;
  cfg.grid[0] = static_cast<unsigned>(blocks);
  cfg.block[0] = static_cast<unsigned>(threads);
  BATCHGAN_LAUNCH_KERNEL(shared_read_unwritten_kernel, cfg, out.mutable_data_ptr<float>(), static_cast<int>(written));
  return out;
}

inline at::Tensor schedule_trace(int64_t blocks, int64_t threads) {
  at::Tensor counter = at::zeros({1}, at::kLong);
  at::Tensor trace = at::empty({blocks, threads, 2}, at::kLong);
  LaunchConfig cfg;
  cfg.grid[0] = static_cast<unsigned>(blocks);
  cfg.block[0] = static_cast<unsigned>(threads);
  BATCHGAN_LAUNCH_KERNEL(schedule_trace_kernel, cfg, counter.mutable_data_ptr<int64_t>(),
                         trace.mutable_data_ptr<int64_t>());
  return trace;
}

// Runs one of the planted races on `values` (int32, blocks x threads, or blocks x 2 x threads
// for "overwrite_before_read") and returns its output.
inline at::Tensor run_race(const std::string& which, const at::Tensor& values, int64_t threads) {
  TORCH_CHECK(values.scalar_type() == at::kInt && values.is_contiguous(), "values: expected contiguous int32");
  LaunchConfig cfg;
  cfg.block[0] = static_cast<unsigned>(threads);
  if (which == "missing_barrier") {
    at::Tensor out = at::empty_like(values);
    cfg.grid[0] = static_cast<unsigned>(values.numel() / threads);
    BATCHGAN_LAUNCH_KERNEL(race_missing_barrier_kernel, cfg, values.const_data_ptr<int>(), out.mutable_data_ptr<int>());
    return out;
  }
  if (which == "overwrite_before_read") {
    cfg.grid[0] = static_cast<unsigned>(values.numel() / (2 * threads));
    at::Tensor out = at::empty({values.numel() / 2}, values.options());
    BATCHGAN_LAUNCH_KERNEL(race_overwrite_before_read_kernel, cfg, values.const_data_ptr<int>(),
                           out.mutable_data_ptr<int>());
    return out;
  }
  if (which == "global_write") {
    cfg.grid[0] = static_cast<unsigned>(values.numel());
    at::Tensor out = at::empty_like(values);
    BATCHGAN_LAUNCH_KERNEL(race_global_write_kernel, cfg, out.mutable_data_ptr<int>());
    return out;
  }
  TORCH_CHECK(false, "which: unknown race '", which, "'");
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
