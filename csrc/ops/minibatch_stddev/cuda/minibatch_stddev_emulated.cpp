// The CUDA kernels of `minibatch_stddev` compiled by the host compiler against the CPU
// emulator, registered as torch.ops.batchgan_emulated.minibatch_stddev* for the tests.
#include <torch/library.h>

#include "ops/minibatch_stddev/cuda/minibatch_stddev_kernels.cuh"
#include "ops/minibatch_stddev/minibatch_stddev_register.h"

namespace batchgan {

TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m) {
  register_minibatch_stddev<&cuda::minibatch_stddev_device, &cuda::minibatch_stddev_backward_device,
                            c10::DeviceType::CPU>(m, Registration::kDefine);
}

}  // namespace batchgan
