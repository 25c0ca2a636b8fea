// Registers the CUDA kernels of the equivariant layers (device code in equivariant_kernels.cuh;
// the products run in ATen, i.e. cuDNN / cuBLAS).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/equivariant/cuda/equivariant_kernels.cuh"
#include "ops/equivariant/equivariant_register.h"

namespace batchgan {

TORCH_LIBRARY_IMPL(batchgan, CUDA, m) {
  register_equivariant<cuda::DeviceKernels, c10::DeviceType::CUDA, c10::cuda::CUDAGuard>(m, Registration::kImpl);
}

}  // namespace batchgan
