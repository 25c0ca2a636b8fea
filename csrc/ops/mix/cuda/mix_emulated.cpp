// The CUDA kernels of `mix` compiled by the host compiler against the CPU emulator, registered
// as torch.ops.batchgan_emulated.mix* for the tests (module batchgan_ext._emulated).
#include <torch/library.h>

#include "ops/mix/cuda/mix_kernels.cuh"
#include "ops/mix/mix_register.h"

namespace batchgan {

TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m) {
  register_mix<&cuda::mix_forward_device, &cuda::mix_backward_device, c10::DeviceType::CPU>(m, Registration::kDefine);
}

}  // namespace batchgan
