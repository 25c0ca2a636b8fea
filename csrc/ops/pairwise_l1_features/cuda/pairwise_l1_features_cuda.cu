// Registers the CUDA kernels of `pairwise_l1_features` (device code in pairwise_l1_features_kernels.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/pairwise_l1_features/cuda/pairwise_l1_features_kernels.cuh"

namespace batchgan {
namespace {

at::Tensor pairwise_l1_features_cuda(const at::Tensor& M, int64_t num_sets, bool exclude_self, bool mean,
                                     const std::optional<at::Tensor>& split, int64_t num_populations) {
  check_device_type(M, "M", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(M.device());
  return cuda::pairwise_l1_features_device(M, num_sets, exclude_self, mean, split, num_populations);
}

at::Tensor pairwise_l1_features_backward_cuda(const at::Tensor& grad, const at::Tensor& M, int64_t num_sets,
                                              bool exclude_self, bool mean, const std::optional<at::Tensor>& split,
                                              int64_t num_populations) {
  check_device_type(M, "M", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(M.device());
  return cuda::pairwise_l1_features_backward_device(grad, M, num_sets, exclude_self, mean, split, num_populations);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CUDA, m) {
  m.impl("pairwise_l1_features", &pairwise_l1_features_cuda);
  m.impl("_pairwise_l1_features_backward", &pairwise_l1_features_backward_cuda);
}

}  // namespace batchgan
