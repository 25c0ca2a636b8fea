// Registers the CUDA kernels of `bernoulli_kl_loss` (device code in bernoulli_kl_loss_kernels.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/bernoulli_kl_loss/bernoulli_kl_loss_register.h"
#include "ops/bernoulli_kl_loss/cuda/bernoulli_kl_loss_kernels.cuh"

namespace batchgan {

TORCH_LIBRARY_IMPL(batchgan, CUDA, m) {
  register_bernoulli_kl_loss<&cuda::bernoulli_kl_loss_device, &cuda::bernoulli_kl_loss_backward_device,
                             c10::DeviceType::CUDA, c10::cuda::CUDAGuard>(m, Registration::kImpl);
}

}  // namespace batchgan
