// Host-side pieces of `pairwise_l1_features` shared by its CPU kernel, its CUDA kernel and the
// emulated CUDA kernel: argument checks, population labels and the per-row normalisation.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "common/checks.h"
#include "ops/pairwise_l1_features/pairwise_l1_features_math.h"

namespace batchgan {

struct PairwiseL1Inputs {
  at::Tensor m;       // (N, B, C), contiguous, input dtype
  at::Tensor labels;  // (N,) int32, contiguous: population of each sample (all 0 without split)
  at::Tensor scale;   // (N, P) acc dtype: weight of row i's population-p sum (1, or 1/count with mean)
  int64_t n = 0, b = 0, c = 0, num_sets = 1, set_size = 0, populations = 1;
  bool exclude_self = true, mean = false, has_split = false;
  at::ScalarType acc_type = at::kFloat;  // float32, or float64 for float64 inputs
};

inline PairwiseL1Inputs pairwise_l1_prepare(const at::Tensor& M, int64_t num_sets, bool exclude_self, bool mean,
                                            const std::optional<at::Tensor>& split, int64_t num_populations) {
  check_float_tensor(M, "M");
  TORCH_CHECK(M.dim() == 3, "M: expected a 3-d tensor (N, B, C) (samples, kernels, kernel dims), got shape ",
              M.sizes());
  PairwiseL1Inputs in;
  in.n = M.size(0);
  in.b = M.size(1);
  in.c = M.size(2);
  TORCH_CHECK(in.n > 0, "M: expected a non-empty batch, got N = 0 samples");
  check_num_sets(in.n, num_sets);
  in.has_split = split.has_value() && split->defined();
  TORCH_CHECK(num_populations >= 1 && num_populations <= kPairwiseMaxPopulations,
              "num_populations: expected a value in [1, ", kPairwiseMaxPopulations, "], got ", num_populations);
  TORCH_CHECK(in.has_split || num_populations == 1,
              "num_populations: expected 1 when split is None (one population), got ", num_populations);
  in.num_sets = num_sets;
  in.set_size = in.n / num_sets;
  in.populations = num_populations;
  in.exclude_self = exclude_self;
  in.mean = mean;
  in.acc_type = M.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  in.m = M.contiguous();
  if (!in.has_split) {
    // One population: every row of a set has the same count, so the weights are one constant
    // (no per-row bookkeeping on the hot path of the common case).
    in.labels = at::zeros({in.n}, M.options().dtype(at::kInt));
    const int64_t count = in.set_size - (exclude_self ? 1 : 0);
    const double weight = mean ? (count > 0 ? 1.0 / static_cast<double>(count) : 0.0) : 1.0;
    in.scale = at::full({in.n, 1}, weight, M.options().dtype(in.acc_type));
    return in;
  }
  const at::Tensor& s = *split;
  check_same_device(M, "M", s, "split");
  TORCH_CHECK(!at::isFloatingType(s.scalar_type()) && !at::isComplexType(s.scalar_type()),
              "split: expected integer (or bool) population labels, got dtype ", s.scalar_type());
  TORCH_CHECK(s.dim() == 1 && s.size(0) == in.n, "split: expected a 1-d tensor of ", in.n,
              " labels (one per sample), got shape ", s.sizes());
  const at::Tensor labels = s.to(at::kLong);
  // An out-of-range label would index out of bounds in the kernels. Checked on the device (see
  // check_on_device): on CUDA the assert runs before the kernels in stream order, and a failed
  // device-side assert stops the context before they can read out of bounds.
  const std::string message =
      "split: expected labels in [0, " + std::to_string(num_populations) + "), got values outside it";
  check_on_device(at::logical_and(labels >= 0, labels < num_populations).all(), message.c_str());
  in.labels = labels.to(at::kInt).contiguous();
  // count[i, p]: samples of population p in i's set that enter o[i, p, :] (without i itself
  // when exclude_self). Mean divides by it; an empty population (e.g. a set of one sample
  // with exclude_self) has sum 0 and mean defined as 0.
  const at::Tensor onehot = at::one_hot(labels, num_populations).to(in.acc_type);         // (N, P)
  at::Tensor count = onehot.view({num_sets, in.set_size, num_populations}).sum(1, true);  // (G, 1, P)
  count = count.expand({num_sets, in.set_size, num_populations}).reshape({in.n, num_populations});
  if (exclude_self) count = count - onehot;
  if (mean) {
    in.scale = at::where(count > 0, count.reciprocal(), at::zeros_like(count)).contiguous();
  } else {
    in.scale = at::ones_like(count).contiguous();
  }
  return in;
}

// Output shape: (N, B) without split, (N, P, B) with it.
inline std::vector<int64_t> pairwise_l1_output_shape(const PairwiseL1Inputs& in) {
  if (in.has_split) return {in.n, in.populations, in.b};
  return {in.n, in.b};
}

// The upstream gradient as (N, P, B) in the accumulation dtype, pre-multiplied by each row's
// normalisation: h[i, p, b] = grad[i, p, b] * scale[i, p].
inline at::Tensor pairwise_l1_scaled_grad(const PairwiseL1Inputs& in, const at::Tensor& grad) {
  check_float_tensor(grad, "grad");
  check_same_device(in.m, "M", grad, "grad");
  const std::vector<int64_t> shape = pairwise_l1_output_shape(in);
  TORCH_CHECK(grad.sizes() == at::IntArrayRef(shape), "grad: expected the shape of the features ",
              at::IntArrayRef(shape), ", got ", grad.sizes());
  return (grad.to(in.acc_type).reshape({in.n, in.populations, in.b}) * in.scale.unsqueeze(2)).contiguous();
}

}  // namespace batchgan
