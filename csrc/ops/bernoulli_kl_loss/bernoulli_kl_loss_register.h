// The registration of `bernoulli_kl_loss`'s kernels, written once for every backend (CPU, CUDA,
// the emulated CUDA kernels): each wrapper checks that logits is on kDevice, makes its device
// current (Guard) and calls the backend's kernel.
// kForward, kBackward: the backend's kernels of bernoulli_kl_loss and _bernoulli_kl_loss_backward.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "common/checks.h"
#include "common/registration.h"
#include "ops/bernoulli_kl_loss/bernoulli_kl_loss_schema.h"

namespace batchgan {

template <auto kForward, auto kBackward, c10::DeviceType kDevice, typename Guard>
struct BernoulliKLLossKernels {
  static at::Tensor forward(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode, int64_t num_sets,
                            c10::string_view reduction) {
    check_device_type(logits, "logits", kDevice);
    const Guard guard(logits.device());
    return kForward(logits, target, mode, num_sets, reduction);
  }

  static std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& logits,
                                                     const at::Tensor& target, c10::string_view mode, int64_t num_sets,
                                                     c10::string_view reduction) {
    check_device_type(logits, "logits", kDevice);
    const Guard guard(logits.device());
    return kBackward(grad, logits, target, mode, num_sets, reduction);
  }
};

template <auto kForward, auto kBackward, c10::DeviceType kDevice, typename Guard = NoDeviceGuard>
void register_bernoulli_kl_loss(torch::Library& m, Registration how) {
  register_forward_backward<BernoulliKLLossKernels<kForward, kBackward, kDevice, Guard>>(
      m, how, kBernoulliKLLossSchema, kBernoulliKLLossBackwardSchema);
}

}  // namespace batchgan
