// Registers the CUDA kernels of `mix` (device code in mix_kernels.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/mix/cuda/mix_kernels.cuh"

namespace batchgan {
namespace {

at::Tensor mix_cuda(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& beta, bool complement) {
  check_device_type(real, "real", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(real.device());
  return cuda::mix_forward_device(real, fake, beta, complement);
}

std::tuple<at::Tensor, at::Tensor> mix_backward_cuda(const at::Tensor& grad, const at::Tensor& beta, bool complement) {
  check_device_type(grad, "grad", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(grad.device());
  return cuda::mix_backward_device(grad, beta, complement);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CUDA, m) {
  m.impl("mix", &mix_cuda);
  m.impl("_mix_backward", &mix_backward_cuda);
}

}  // namespace batchgan
