// The registration of `mix`'s kernels, written once for every backend (CPU, CUDA, the emulated
// CUDA kernels): each wrapper checks that the argument the dispatcher chose the backend by is on
// kDevice, makes its device current (Guard) and calls the backend's kernel.
// kForward, kBackward: the backend's kernels of mix and _mix_backward.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "common/checks.h"
#include "common/registration.h"
#include "ops/mix/mix_schema.h"

namespace batchgan {

template <auto kForward, auto kBackward, c10::DeviceType kDevice, typename Guard>
struct MixKernels {
  static at::Tensor forward(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& beta, bool complement) {
    check_device_type(real, "real", kDevice);
    const Guard guard(real.device());
    return kForward(real, fake, beta, complement);
  }

  static std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& beta, bool complement) {
    check_device_type(grad, "grad", kDevice);
    const Guard guard(grad.device());
    return kBackward(grad, beta, complement);
  }
};

template <auto kForward, auto kBackward, c10::DeviceType kDevice, typename Guard = NoDeviceGuard>
void register_mix(torch::Library& m, Registration how) {
  register_forward_backward<MixKernels<kForward, kBackward, kDevice, Guard>>(m, how, kMixSchema, kMixBackwardSchema);
}

}  // namespace batchgan
