// The CUDA kernels of `pairwise_l1_features` compiled by the host compiler against the CPU
// emulator, registered as torch.ops.batchgan_emulated.pairwise_l1_features* for the tests.
#include <torch/library.h>

#include "ops/pairwise_l1_features/cuda/pairwise_l1_features_kernels.cuh"
#include "ops/pairwise_l1_features/pairwise_l1_features_register.h"

namespace batchgan {

TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m) {
  register_pairwise_l1_features<&cuda::pairwise_l1_features_device, &cuda::pairwise_l1_features_backward_device,
                                c10::DeviceType::CPU>(m, Registration::kDefine);
}

}  // namespace batchgan
