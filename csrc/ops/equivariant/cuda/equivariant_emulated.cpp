// The CUDA kernels of the equivariant layers compiled by the host compiler against the CPU
// emulator, registered as torch.ops.batchgan_emulated.* for the tests (module
// batchgan_ext._emulated). The products run in ATen on the CPU; the fused passes are the
// device code of equivariant_kernels.cuh with the real launch configurations.
#include <torch/library.h>

#include "ops/equivariant/cuda/equivariant_kernels.cuh"
#include "ops/equivariant/equivariant_register.h"

namespace batchgan {

TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m) {
  register_equivariant<cuda::DeviceKernels, c10::DeviceType::CPU>(m, Registration::kDefine);
}

}  // namespace batchgan
