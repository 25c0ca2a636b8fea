// Schemas of the `pairwise_l1_features` ops (minibatch discrimination, Salimans et al. 2016,
// section 3.2), registered under batchgan:: (pairwise_l1_features.cpp) and, for the tests, under
// batchgan_emulated:: with the emulated CUDA kernels (cuda/pairwise_l1_features_emulated.cpp).
#pragma once

namespace batchgan {

// o[i, b] = sum_j exp(-||M[i,b,:] - M[j,b,:]||_1) over the j of i's set (the paper's o(x_i)_b).
// Output (N, B) without split, (N, num_populations, B) with per-sample population labels.
inline constexpr const char* kPairwiseL1FeaturesSchema =
    "pairwise_l1_features(Tensor M, int num_sets=1, bool exclude_self=True, bool mean=False, Tensor? split=None, "
    "int num_populations=1) -> Tensor";
// dL/dM (N, B, C) from dL/do, recomputing the pairwise terms (nothing N x N is saved).
inline constexpr const char* kPairwiseL1FeaturesBackwardSchema =
    "_pairwise_l1_features_backward(Tensor grad, Tensor M, int num_sets, bool exclude_self, bool mean, Tensor? split, "
    "int num_populations) -> Tensor";

}  // namespace batchgan
