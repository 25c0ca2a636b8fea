// Host-side pieces of the `bernoulli_kl_loss` op shared by its CPU kernel, its CUDA kernel and
// the emulated CUDA kernel: argument parsing and checks, and the final reduction.
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include <string>

#include "common/checks.h"
#include "ops/bernoulli_kl_loss/bernoulli_kl_loss_math.h"

namespace batchgan {

enum class Reduction { kNone, kMean, kSum };

inline KLMode parse_kl_mode(c10::string_view mode) {
  if (mode == "bgan") return KLMode::kBgan;
  if (mode == "mbgan") return KLMode::kMbgan;
  TORCH_CHECK(false, "mode: expected 'bgan' or 'mbgan', got '", std::string(mode), "'");
}

inline Reduction parse_reduction(c10::string_view reduction) {
  if (reduction == "none") return Reduction::kNone;
  if (reduction == "mean") return Reduction::kMean;
  if (reduction == "sum") return Reduction::kSum;
  TORCH_CHECK(false, "reduction: expected 'none', 'mean' or 'sum', got '", std::string(reduction), "'");
}

constexpr const char* kKLTargetRangeMessage = BATCHGAN_KL_TARGET_RANGE_MESSAGE;

inline void kl_check_target_range(bool in_range) { TORCH_CHECK(in_range, kKLTargetRangeMessage); }

struct KLInputs {
  at::Tensor logits;  // contiguous, (N,)
  at::Tensor target;  // contiguous, (G,), in the accumulation dtype
  int64_t batch = 0;
  int64_t num_sets = 0;
  int64_t set_size = 0;
  KLMode mode = KLMode::kBgan;
  Reduction reduction = Reduction::kMean;
  at::ScalarType acc_type = at::kFloat;  // float32, or float64 for float64 logits
};

// The range of the target values (0 <= u <= 1) is checked by each kernel as it reads them (the
// CPU loop; on the device BATCHGAN_DEVICE_CHECK, so no extra launch and no host sync).
inline KLInputs kl_prepare(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode, int64_t num_sets,
                           c10::string_view reduction) {
  KLInputs in;
  in.mode = parse_kl_mode(mode);
  in.reduction = parse_reduction(reduction);
  check_float_tensor(logits, "logits");
  check_float_tensor(target, "target");
  check_same_device(logits, "logits", target, "target");
  TORCH_CHECK(logits.dim() == 1 || (logits.dim() == 2 && logits.size(1) == 1),
              "logits: expected one logit per sample, shape (N,) or (N, 1), got ", logits.sizes());
  in.batch = logits.size(0);
  TORCH_CHECK(in.batch > 0, "logits: expected a non-empty batch, got 0 samples");
  check_num_sets(in.batch, num_sets);
  in.num_sets = num_sets;
  in.set_size = in.batch / num_sets;
  TORCH_CHECK(target.numel() == num_sets && target.dim() <= 1, "target: expected one ratio per set, shape (", num_sets,
              ",), got ", target.sizes());
  in.acc_type = logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  in.logits = logits.reshape({in.batch}).contiguous();
  in.target = target.reshape({num_sets}).to(in.acc_type).contiguous();
  return in;
}

// The loss from the per-set totals (see bernoulli_kl_set_total) and, for mbgan with
// reduction='none', the per-sample losses the kernel wrote.
inline at::Tensor kl_finish_forward(const KLInputs& in, const at::Tensor& set_total, const at::Tensor& per_sample,
                                    at::ScalarType out_dtype) {
  switch (in.reduction) {
    case Reduction::kNone: return in.mode == KLMode::kBgan ? set_total.to(out_dtype) : per_sample;
    case Reduction::kSum: return set_total.sum().to(out_dtype);
    case Reduction::kMean:
    default: {
      const int64_t count = in.mode == KLMode::kBgan ? in.num_sets : in.batch;
      return set_total.sum().div_(static_cast<double>(count)).to(out_dtype);
    }
  }
}

// Where the backward kernels read the upstream gradient of sample i (mbgan) or set g (bgan):
// grad[index * stride] * scale.
struct KLGradAccess {
  int64_t stride;
  double scale;
};

inline KLGradAccess kl_check_grad(const KLInputs& in, const at::Tensor& grad) {
  check_float_tensor(grad, "grad");
  check_same_device(in.logits, "logits", grad, "grad");
  if (in.reduction == Reduction::kNone) {
    const int64_t expected = in.mode == KLMode::kBgan ? in.num_sets : in.batch;
    TORCH_CHECK(grad.numel() == expected, "grad: expected ", expected, " values (the unreduced loss), got shape ",
                grad.sizes());
    return {1, 1.0};
  }
  TORCH_CHECK(grad.numel() == 1, "grad: expected a scalar (the reduced loss), got shape ", grad.sizes());
  const int64_t count = in.mode == KLMode::kBgan ? in.num_sets : in.batch;
  return {0, in.reduction == Reduction::kMean ? 1.0 / static_cast<double>(count) : 1.0};
}

}  // namespace batchgan
