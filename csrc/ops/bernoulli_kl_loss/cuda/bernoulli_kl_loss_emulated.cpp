// The CUDA kernels of `bernoulli_kl_loss` compiled by the host compiler against the CPU
// emulator, registered as torch.ops.batchgan_emulated.bernoulli_kl_loss* for the tests.
#include <torch/library.h>

#include "ops/bernoulli_kl_loss/bernoulli_kl_loss_register.h"
#include "ops/bernoulli_kl_loss/cuda/bernoulli_kl_loss_kernels.cuh"

namespace batchgan {

TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m) {
  register_bernoulli_kl_loss<&cuda::bernoulli_kl_loss_device, &cuda::bernoulli_kl_loss_backward_device,
                             c10::DeviceType::CPU>(m, Registration::kDefine);
}

}  // namespace batchgan
