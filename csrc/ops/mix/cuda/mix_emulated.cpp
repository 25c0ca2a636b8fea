// The CUDA kernels of `mix` compiled by the host compiler against the CPU emulator, registered
// as torch.ops.batchgan_emulated.mix* for the tests (module batchgan_ext._emulated).
#include <torch/library.h>

#include "ops/mix/cuda/mix_kernels.cuh"
#include "ops/mix/mix_schema.h"

namespace batchgan {
namespace {

at::Tensor mix_emulated(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& beta, bool complement) {
  check_device_type(real, "real", c10::DeviceType::CPU);
  return cuda::mix_forward_device(real, fake, beta, complement);
}

std::tuple<at::Tensor, at::Tensor> mix_backward_emulated(const at::Tensor& grad, const at::Tensor& beta,
                                                         bool complement) {
  check_device_type(grad, "grad", c10::DeviceType::CPU);
  return cuda::mix_backward_device(grad, beta, complement);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m) {
  m.def(kMixSchema, &mix_emulated);
  m.def(kMixBackwardSchema, &mix_backward_emulated);
}

}  // namespace batchgan
