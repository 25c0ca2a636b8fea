// The registration of `pairwise_l1_features`'s kernels, written once for every backend (CPU,
// CUDA, the emulated CUDA kernels): each wrapper checks that M is on kDevice, makes its device
// current (Guard) and calls the backend's kernel.
// kForward, kBackward: the backend's kernels of pairwise_l1_features and _pairwise_l1_features_backward.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "common/checks.h"
#include "common/registration.h"
#include "ops/pairwise_l1_features/pairwise_l1_features_schema.h"

namespace batchgan {

template <auto kForward, auto kBackward, c10::DeviceType kDevice, typename Guard>
struct PairwiseL1FeaturesKernels {
  static at::Tensor forward(const at::Tensor& M, int64_t num_sets, bool exclude_self, bool mean,
                            const std::optional<at::Tensor>& split, int64_t num_populations) {
    check_device_type(M, "M", kDevice);
    const Guard guard(M.device());
    return kForward(M, num_sets, exclude_self, mean, split, num_populations);
  }

  static at::Tensor backward(const at::Tensor& grad, const at::Tensor& M, int64_t num_sets, bool exclude_self,
                             bool mean, const std::optional<at::Tensor>& split, int64_t num_populations) {
    check_device_type(M, "M", kDevice);
    const Guard guard(M.device());
    return kBackward(grad, M, num_sets, exclude_self, mean, split, num_populations);
  }
};

template <auto kForward, auto kBackward, c10::DeviceType kDevice, typename Guard = NoDeviceGuard>
void register_pairwise_l1_features(torch::Library& m, Registration how) {
  register_forward_backward<PairwiseL1FeaturesKernels<kForward, kBackward, kDevice, Guard>>(
      m, how, kPairwiseL1FeaturesSchema, kPairwiseL1FeaturesBackwardSchema);
}

}  // namespace batchgan
