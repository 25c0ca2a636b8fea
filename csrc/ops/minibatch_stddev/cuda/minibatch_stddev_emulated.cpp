// The CUDA kernels of `minibatch_stddev` compiled by the host compiler against the CPU
// emulator, registered as torch.ops.batchgan_emulated.minibatch_stddev* for the tests.
#include <torch/library.h>

#include "ops/minibatch_stddev/cuda/minibatch_stddev_kernels.cuh"
#include "ops/minibatch_stddev/minibatch_stddev_schema.h"

namespace batchgan {
namespace {

at::Tensor minibatch_stddev_emulated(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  return cuda::minibatch_stddev_device(x, group_size, num_channels);
}

at::Tensor minibatch_stddev_backward_emulated(const at::Tensor& grad, const at::Tensor& x, int64_t group_size,
                                              int64_t num_channels) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  return cuda::minibatch_stddev_backward_device(grad, x, group_size, num_channels);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m) {
  m.def(kMinibatchStddevSchema, &minibatch_stddev_emulated);
  m.def(kMinibatchStddevBackwardSchema, &minibatch_stddev_backward_emulated);
}

}  // namespace batchgan
