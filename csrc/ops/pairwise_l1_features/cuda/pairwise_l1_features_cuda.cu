// Registers the CUDA kernels of `pairwise_l1_features` (device code in pairwise_l1_features_kernels.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/pairwise_l1_features/cuda/pairwise_l1_features_kernels.cuh"
#include "ops/pairwise_l1_features/pairwise_l1_features_register.h"

namespace batchgan {

TORCH_LIBRARY_IMPL(batchgan, CUDA, m) {
  register_pairwise_l1_features<&cuda::pairwise_l1_features_device, &cuda::pairwise_l1_features_backward_device,
                                c10::DeviceType::CUDA, c10::cuda::CUDAGuard>(m, Registration::kImpl);
}

}  // namespace batchgan
