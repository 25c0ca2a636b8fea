// The CUDA kernels of `bernoulli_kl_loss` compiled by the host compiler against the CPU
// emulator, registered as torch.ops.batchgan_emulated.bernoulli_kl_loss* for the tests.
#include <torch/library.h>

#include "ops/bernoulli_kl_loss/bernoulli_kl_loss_schema.h"
#include "ops/bernoulli_kl_loss/cuda/bernoulli_kl_loss_kernels.cuh"

namespace batchgan {
namespace {

at::Tensor bernoulli_kl_loss_emulated(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode,
                                      int64_t num_sets, c10::string_view reduction) {
  check_device_type(logits, "logits", c10::DeviceType::CPU);
  return cuda::bernoulli_kl_loss_device(logits, target, mode, num_sets, reduction);
}

std::tuple<at::Tensor, at::Tensor> bernoulli_kl_loss_backward_emulated(const at::Tensor& grad,
                                                                       const at::Tensor& logits,
                                                                       const at::Tensor& target, c10::string_view mode,
                                                                       int64_t num_sets, c10::string_view reduction) {
  check_device_type(logits, "logits", c10::DeviceType::CPU);
  return cuda::bernoulli_kl_loss_backward_device(grad, logits, target, mode, num_sets, reduction);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m) {
  m.def(kBernoulliKLLossSchema, &bernoulli_kl_loss_emulated);
  m.def(kBernoulliKLLossBackwardSchema, &bernoulli_kl_loss_backward_emulated);
}

}  // namespace batchgan
