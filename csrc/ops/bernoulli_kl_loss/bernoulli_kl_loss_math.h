// Math of the Bernoulli-KL loss (BGAN paper, eq. 3-5, 13, 14), shared by the CPU kernel and
// the CUDA kernel.
//
// With v = sigmoid(l) the predicted ratio of real samples and u the true ratio:
//   KL(B(u) || B(v)) = u log(u/v) + (1-u) log((1-u)/(1-v))                          (eq. 3)
//                    = u softplus(-l) + (1-u) softplus(l) + u log u + (1-u) log(1-u),
// using -log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l). Written this
// way it is exact at u in {0, 1} (0 log 0 = 0; no cancellation of large terms) and finite for
// any finite logit.
//   d KL / d l = sigmoid(l) - u,      d KL / d u = logit(u) - l.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/macros.h"

namespace batchgan {

enum class KLMode : int64_t {
  kBgan = 0,   // eq. 13: average the logits of a set, one loss per set
  kMbgan = 1,  // eq. 14: one loss per sample against its set's target, then average
};

// A ratio outside [0, 1] (or NaN) is a bug in the caller. A string literal, so that device code
// can assert with it too.
#define BATCHGAN_KL_TARGET_RANGE_MESSAGE \
  "target: expected ratios of real samples in [0, 1], got values outside it (or NaN)"

template <typename T>
BATCHGAN_HOST_DEVICE_INLINE bool kl_target_in_range(T u) {
  return u >= T(0) && u <= T(1);  // false for NaN
}

BATCHGAN_HOST_DEVICE_INLINE float math_exp(float x) { return ::expf(x); }
BATCHGAN_HOST_DEVICE_INLINE double math_exp(double x) { return ::exp(x); }
BATCHGAN_HOST_DEVICE_INLINE float math_log(float x) { return ::logf(x); }
BATCHGAN_HOST_DEVICE_INLINE double math_log(double x) { return ::log(x); }
BATCHGAN_HOST_DEVICE_INLINE float math_log1p(float x) { return ::log1pf(x); }
BATCHGAN_HOST_DEVICE_INLINE double math_log1p(double x) { return ::log1p(x); }

// log(1 + exp(x)) without overflow.
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T softplus(T x) {
  const T abs_x = x < T(0) ? -x : x;
  return (x > T(0) ? x : T(0)) + math_log1p(math_exp(-abs_x));
}

template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T sigmoid(T x) {
  if (x >= T(0)) {
    return T(1) / (T(1) + math_exp(-x));
  }
  const T e = math_exp(x);
  return e / (T(1) + e);
}

// x log x with 0 log 0 = 0.
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T xlogx(T x) {
  return x > T(0) ? x * math_log(x) : T(0);
}

// KL(B(u) || B(sigmoid(l))), eq. 3. A term whose weight u or 1 - u is 0 is left out (selected,
// not multiplied), so an infinite logit gives the limit: 0 at u = 1, l = +inf (and u = 0,
// l = -inf), +inf when the sigmoid saturates on the wrong side; a NaN logit gives NaN.
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T bernoulli_kl_from_logit(T logit, T u) {
  const T real_term = u > T(0) ? u * softplus(-logit) : T(0);
  const T fake_term = u < T(1) ? (T(1) - u) * softplus(logit) : T(0);
  return real_term + fake_term + xlogx(u) + xlogx(T(1) - u);
}

template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T bernoulli_kl_grad_logit(T logit, T u) {
  return sigmoid(logit) - u;
}

// logit(u) - l; +-inf at u in {0, 1}, where the KL is not differentiable in u.
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T bernoulli_kl_grad_target(T logit, T u) {
  return math_log(u) - math_log(T(1) - u) - logit;
}

// What a set contributes to the loss, from `acc`, the sum over its n samples of the logits
// (bgan) or of the per-sample KLs (mbgan): bgan applies the sigmoid to the set's mean logit
// (the set-mean of eq. 10 is taken before the sigmoid); mbgan sums the per-sample KLs.
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T bernoulli_kl_set_total(KLMode mode, T acc, int64_t n, T u) {
  return mode == KLMode::kBgan ? bernoulli_kl_from_logit(acc / static_cast<T>(n), u) : acc;
}

}  // namespace batchgan
