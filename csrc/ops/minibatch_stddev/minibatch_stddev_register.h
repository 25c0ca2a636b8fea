// The registration of `minibatch_stddev`'s kernels, written once for every backend (CPU, CUDA,
// the emulated CUDA kernels): each wrapper checks that x is on kDevice, makes its device current
// (Guard) and calls Backend's kernel.
// Backend: static minibatch_stddev(...) and minibatch_stddev_backward(...) with the signatures below.
#pragma once

#include <ATen/core/Tensor.h>

#include "common/checks.h"
#include "common/registration.h"
#include "ops/minibatch_stddev/minibatch_stddev_schema.h"

namespace batchgan {

template <typename Backend, c10::DeviceType kDevice, typename Guard>
struct MinibatchStddevKernels {
  static at::Tensor minibatch_stddev(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
    check_device_type(x, "x", kDevice);
    const Guard guard(x.device());
    return Backend::minibatch_stddev(x, group_size, num_channels);
  }

  static at::Tensor minibatch_stddev_backward(const at::Tensor& grad, const at::Tensor& x, int64_t group_size,
                                              int64_t num_channels) {
    check_device_type(x, "x", kDevice);
    const Guard guard(x.device());
    return Backend::minibatch_stddev_backward(grad, x, group_size, num_channels);
  }
};

template <typename Backend, c10::DeviceType kDevice, typename Guard = NoDeviceGuard>
void register_minibatch_stddev(torch::Library& m, Registration how) {
  using Kernels = MinibatchStddevKernels<Backend, kDevice, Guard>;
  register_kernel(m, how, kMinibatchStddevSchema, &Kernels::minibatch_stddev);
  register_kernel(m, how, kMinibatchStddevBackwardSchema, &Kernels::minibatch_stddev_backward);
}

}  // namespace batchgan
