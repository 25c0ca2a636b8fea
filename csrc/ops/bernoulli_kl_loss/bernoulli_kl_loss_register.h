// The registration of `bernoulli_kl_loss`'s kernels, written once for every backend (CPU, CUDA,
// the emulated CUDA kernels): each wrapper checks that logits is on kDevice, makes its device
// current (Guard) and calls Backend's kernel.
// Backend: static bernoulli_kl_loss(...) and bernoulli_kl_loss_backward(...) with the signatures below.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "common/checks.h"
#include "common/registration.h"
#include "ops/bernoulli_kl_loss/bernoulli_kl_loss_schema.h"

namespace batchgan {

template <typename Backend, c10::DeviceType kDevice, typename Guard>
struct BernoulliKLLossKernels {
  static at::Tensor bernoulli_kl_loss(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode,
                                      int64_t num_sets, c10::string_view reduction) {
    check_device_type(logits, "logits", kDevice);
    const Guard guard(logits.device());
    return Backend::bernoulli_kl_loss(logits, target, mode, num_sets, reduction);
  }

  static std::tuple<at::Tensor, at::Tensor> bernoulli_kl_loss_backward(const at::Tensor& grad, const at::Tensor& logits,
                                                                       const at::Tensor& target, c10::string_view mode,
                                                                       int64_t num_sets, c10::string_view reduction) {
    check_device_type(logits, "logits", kDevice);
    const Guard guard(logits.device());
    return Backend::bernoulli_kl_loss_backward(grad, logits, target, mode, num_sets, reduction);
  }
};

template <typename Backend, c10::DeviceType kDevice, typename Guard = NoDeviceGuard>
void register_bernoulli_kl_loss(torch::Library& m, Registration how) {
  using Kernels = BernoulliKLLossKernels<Backend, kDevice, Guard>;
  register_kernel(m, how, kBernoulliKLLossSchema, &Kernels::bernoulli_kl_loss);
  register_kernel(m, how, kBernoulliKLLossBackwardSchema, &Kernels::bernoulli_kl_loss_backward);
}

}  // namespace batchgan
