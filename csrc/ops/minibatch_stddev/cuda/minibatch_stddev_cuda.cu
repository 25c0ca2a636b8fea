// Registers the CUDA kernels of `minibatch_stddev` (device code in minibatch_stddev_kernels.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/minibatch_stddev/cuda/minibatch_stddev_kernels.cuh"
#include "ops/minibatch_stddev/minibatch_stddev_register.h"

namespace batchgan {

TORCH_LIBRARY_IMPL(batchgan, CUDA, m) {
  register_minibatch_stddev<&cuda::minibatch_stddev_device, &cuda::minibatch_stddev_backward_device,
                            c10::DeviceType::CUDA, c10::cuda::CUDAGuard>(m, Registration::kImpl);
}

}  // namespace batchgan
