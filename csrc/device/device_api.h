// The portable subset of CUDA that batchgan's device code is written against.
//
// Kernels (the ops' cuda/*.cuh headers) use only: threadIdx/blockIdx/blockDim/gridDim,
// shared memory declared with BATCHGAN_SHARED(type, name, dims) (for `__shared__ type name dims`),
// __syncthreads(), atomicAdd, standard math, the warp/block reductions below, IntDivider and
// BATCHGAN_DEVICE_CHECK. Blocks are multiples of the warp size. Under nvcc this header is a thin
// layer over real CUDA; compiled by the host compiler it maps the same names onto
// csrc/device/cuda_emulator.h, which executes launches on the CPU so the tests run the very same
// device code.
#pragma once

#include <ATen/cuda/detail/IntegerDivider.cuh>

#include "common/launch_config.h"
#include "common/macros.h"

#if defined(__CUDACC__)

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

// Launches `kernel` with a configuration from launch_config.h on the current stream.
#define BATCHGAN_LAUNCH_KERNEL(kernel, cfg, ...)                                                        \
  do {                                                                                                  \
    const ::batchgan::LaunchConfig& batchgan_cfg_ = (cfg);                                              \
    auto batchgan_kernel_ = kernel;                                                                     \
    batchgan_kernel_<<<dim3(batchgan_cfg_.grid[0], batchgan_cfg_.grid[1], batchgan_cfg_.grid[2]),       \
                       dim3(batchgan_cfg_.block[0], batchgan_cfg_.block[1], batchgan_cfg_.block[2]), 0, \
                       at::cuda::getCurrentCUDAStream()>>>(__VA_ARGS__);                                \
    C10_CUDA_KERNEL_LAUNCH_CHECK();                                                                     \
  } while (0)

// A shared-memory variable of the block; the emulator's version gives each block fresh memory.
#define BATCHGAN_SHARED(type, name, ...) __shared__ type name __VA_ARGS__

// A check of a value the kernel reads, at no extra launch or host sync: a device-side assert
// (the CUDA context ends at the next synchronisation, as with torch's _assert_async).
// `message` must be a string literal.
#define BATCHGAN_DEVICE_CHECK(cond, message) CUDA_KERNEL_ASSERT_MSG(cond, message)

namespace batchgan {

// Sum over the 32 lanes of a full warp; every lane gets the total.
template <typename T>
__device__ __forceinline__ T warp_reduce_sum(T value) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;
}

}  // namespace batchgan

#else  // host compiler: the CPU emulator

#include "device/cuda_emulator.h"

#define BATCHGAN_LAUNCH_KERNEL(kernel, cfg, ...) ::batchgan::emu::launch((cfg), kernel, __VA_ARGS__)

// The emulated device-side assert: the launch fails with `message` (as the CPU kernel's error).
#define BATCHGAN_DEVICE_CHECK(cond, message)                        \
  do {                                                              \
    if (!(cond)) throw ::batchgan::emu::DeviceCheckFailed(message); \
  } while (0)

namespace batchgan {
using ::batchgan::emu::warp_reduce_sum;
}  // namespace batchgan

#endif

namespace batchgan {

// Division and remainder by a size fixed for the whole launch (launch_config.h's
// dispatch_index_type picks index_t): for uint32_t a multiply-high and a shift instead of a
// hardware division per element, as PyTorch's own elementwise kernels do.
template <typename index_t>
using IntDivider = at::cuda::detail::IntDivider<index_t>;

// Sum over a 1-D block whose size is a multiple of the warp size. The result is valid in
// thread 0 only. Every thread of the block must call it (it contains barriers); a kernel may
// call it several times in a row.
template <typename T>
__device__ __forceinline__ T block_reduce_sum(T value) {
  BATCHGAN_SHARED(T, warp_sums, [1024 / kWarpSize]);
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  value = warp_reduce_sum(value);
  if (lane == 0) {
    warp_sums[warp] = value;
  }
  __syncthreads();
  const int num_warps = blockDim.x / kWarpSize;
  if (warp == 0) {
    value = lane < num_warps ? warp_sums[lane] : T(0);
    value = warp_reduce_sum(value);
  }
  // The next call may overwrite warp_sums only after warp 0 has read it.
  __syncthreads();
  return value;
}

}  // namespace batchgan
