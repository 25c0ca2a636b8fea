// Registers the CUDA kernels of `minibatch_stddev` (device code in minibatch_stddev_kernels.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/minibatch_stddev/cuda/minibatch_stddev_kernels.cuh"

namespace batchgan {
namespace {

at::Tensor minibatch_stddev_cuda(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
  check_device_type(x, "x", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  return cuda::minibatch_stddev_device(x, group_size, num_channels);
}

at::Tensor minibatch_stddev_backward_cuda(const at::Tensor& grad, const at::Tensor& x, int64_t group_size,
                                          int64_t num_channels) {
  check_device_type(x, "x", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  return cuda::minibatch_stddev_backward_device(grad, x, group_size, num_channels);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CUDA, m) {
  m.impl("minibatch_stddev", &minibatch_stddev_cuda);
  m.impl("_minibatch_stddev_backward", &minibatch_stddev_backward_cuda);
}

}  // namespace batchgan
