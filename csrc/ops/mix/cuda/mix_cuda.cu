// Registers the CUDA kernels of `mix` (device code in mix_kernels.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/mix/cuda/mix_kernels.cuh"
#include "ops/mix/mix_register.h"

namespace batchgan {

TORCH_LIBRARY_IMPL(batchgan, CUDA, m) {
  register_mix<&cuda::mix_forward_device, &cuda::mix_backward_device, c10::DeviceType::CUDA, c10::cuda::CUDAGuard>(
      m, Registration::kImpl);
}

}  // namespace batchgan
