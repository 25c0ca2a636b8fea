// Registers the CUDA kernels of `bernoulli_kl_loss` (device code in bernoulli_kl_loss_kernels.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/bernoulli_kl_loss/cuda/bernoulli_kl_loss_kernels.cuh"

namespace batchgan {
namespace {

at::Tensor bernoulli_kl_loss_cuda(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode,
                                  int64_t num_sets, c10::string_view reduction) {
  check_device_type(logits, "logits", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(logits.device());
  return cuda::bernoulli_kl_loss_device(logits, target, mode, num_sets, reduction);
}

std::tuple<at::Tensor, at::Tensor> bernoulli_kl_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& logits,
                                                                   const at::Tensor& target, c10::string_view mode,
                                                                   int64_t num_sets, c10::string_view reduction) {
  check_device_type(logits, "logits", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(logits.device());
  return cuda::bernoulli_kl_loss_backward_device(grad, logits, target, mode, num_sets, reduction);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CUDA, m) {
  m.impl("bernoulli_kl_loss", &bernoulli_kl_loss_cuda);
  m.impl("_bernoulli_kl_loss_backward", &bernoulli_kl_loss_backward_cuda);
}

}  // namespace batchgan
