// The CUDA kernels of `pairwise_l1_features` compiled by the host compiler against the CPU
// emulator, registered as torch.ops.batchgan_emulated.pairwise_l1_features* for the tests.
#include <torch/library.h>

#include "ops/pairwise_l1_features/cuda/pairwise_l1_features_kernels.cuh"
#include "ops/pairwise_l1_features/pairwise_l1_features_schema.h"

namespace batchgan {
namespace {

at::Tensor pairwise_l1_features_emulated(const at::Tensor& M, int64_t num_sets, bool exclude_self, bool mean,
                                         const std::optional<at::Tensor>& split, int64_t num_populations) {
  check_device_type(M, "M", c10::DeviceType::CPU);
  return cuda::pairwise_l1_features_device(M, num_sets, exclude_self, mean, split, num_populations);
}

at::Tensor pairwise_l1_features_backward_emulated(const at::Tensor& grad, const at::Tensor& M, int64_t num_sets,
                                                  bool exclude_self, bool mean,
                                                  const std::optional<at::Tensor>& split, int64_t num_populations) {
  check_device_type(M, "M", c10::DeviceType::CPU);
  return cuda::pairwise_l1_features_backward_device(grad, M, num_sets, exclude_self, mean, split, num_populations);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m) {
  m.def(kPairwiseL1FeaturesSchema, &pairwise_l1_features_emulated);
  m.def(kPairwiseL1FeaturesBackwardSchema, &pairwise_l1_features_backward_emulated);
}

}  // namespace batchgan
