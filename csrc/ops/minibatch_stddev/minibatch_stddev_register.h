// The registration of `minibatch_stddev`'s kernels, written once for every backend (CPU, CUDA,
// the emulated CUDA kernels): each wrapper checks that x is on kDevice, makes its device current
// (Guard) and calls the backend's kernel.
// kForward, kBackward: the backend's kernels of minibatch_stddev and _minibatch_stddev_backward.
#pragma once

#include <ATen/core/Tensor.h>

#include "common/checks.h"
#include "common/registration.h"
#include "ops/minibatch_stddev/minibatch_stddev_schema.h"

namespace batchgan {

template <auto kForward, auto kBackward, c10::DeviceType kDevice, typename Guard>
struct MinibatchStddevKernels {
  static at::Tensor forward(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
    check_device_type(x, "x", kDevice);
    const Guard guard(x.device());
    return kForward(x, group_size, num_channels);
  }

  static at::Tensor backward(const at::Tensor& grad, const at::Tensor& x, int64_t group_size, int64_t num_channels) {
    check_device_type(x, "x", kDevice);
    const Guard guard(x.device());
    return kBackward(grad, x, group_size, num_channels);
  }
};

template <auto kForward, auto kBackward, c10::DeviceType kDevice, typename Guard = NoDeviceGuard>
void register_minibatch_stddev(torch::Library& m, Registration how) {
  register_forward_backward<MinibatchStddevKernels<kForward, kBackward, kDevice, Guard>>(
      m, how, kMinibatchStddevSchema, kMinibatchStddevBackwardSchema);
}

}  // namespace batchgan
