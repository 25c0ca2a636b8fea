// Math of the minibatch-discrimination features (Salimans et al. 2016, section 3.2), shared by
// the CPU kernel and the CUDA kernel.
//
//   c_b(i, j) = exp(-||M_i,b - M_j,b||_1)                         (paper, c_b(x_i, x_j))
//   o[i, p, b] = s[i, p] * sum_{j in set(i), label(j) = p, j != i if exclude_self} c_b(i, j)
// with s[i, p] = 1, or 1 / (number of such j) for mean. Since c is symmetric and
// d|u|/du = sign(u) (sign(0) = 0, so the j = i term never contributes):
//   dL/dM[k, b, :] = -sum_j sign(M_k,b - M_j,b) c_b(k, j) (h[k, label(j), b] + h[j, label(k), b])
// with h[i, p, b] = dL/do[i, p, b] * s[i, p]. Both directions only need M and the O(N)
// weights, so nothing of size N x N is ever stored. Terms outside the sum (other sets or
// populations, j = i with exclude_self) never contribute, even when they are inf or NaN; the
// terms inside follow IEEE arithmetic (exp(-inf) = 0, NaN distances give NaN).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/macros.h"

namespace batchgan {

// Populations (the split labels) a row can carry: the CUDA kernel keeps one accumulator per
// population in registers. Real/fake needs 2.
constexpr int64_t kPairwiseMaxPopulations = 8;

BATCHGAN_HOST_DEVICE_INLINE float pl1_abs(float x) { return ::fabsf(x); }
BATCHGAN_HOST_DEVICE_INLINE double pl1_abs(double x) { return ::fabs(x); }

// sign(x) with sign(0) = 0, written as a difference of comparisons so that loops vectorise.
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T pl1_sign(T x) {
  return static_cast<T>(x > T(0)) - static_cast<T>(x < T(0));
}

// exp(-d) for a distance d >= 0 (c_b of the paper). The GPU uses the libdevice exp.
BATCHGAN_HOST_DEVICE_INLINE float pl1_exp_neg_device(float d) { return ::expf(-d); }
BATCHGAN_HOST_DEVICE_INLINE double pl1_exp_neg_device(double d) { return ::exp(-d); }

// exp(-d) for a float distance d >= 0 on the CPU: a Cephes-style exp (round-to-nearest range
// reduction by the 1.5*2^23 trick, degree-6 polynomial, exponent assembled in the bits) with
// no libm call and no floating-point comparison: glibc's expf cannot be vectorised without
// -ffast-math, and GCC does not if-convert float compares under the default -ftrapping-math,
// so the clamping is done on the integer bits (for d >= 0 they order like the values).
// Relative error ~2 ulp; d >= 87 (exp < 1.7e-38, the float normal range) and d = inf give 0,
// a NaN d gives NaN.
inline float pl1_exp_neg_cpu(float d) {
  constexpr int32_t kBits87 = 0x42ae0000;  // bits of 87.0f
  int32_t ud;
  std::memcpy(&ud, &d, sizeof(ud));
  const bool big = ud >= kBits87;  // also +inf and NaN
  const bool nan = (ud & 0x7fffffff) > 0x7f800000;
  const int32_t clamped_bits = ud < kBits87 ? ud : kBits87;
  float dc;
  std::memcpy(&dc, &clamped_bits, sizeof(dc));
  const float x = -dc;
  // t = x log2(e) + 1.5 * 2^23 rounds to an integer n held in t's low mantissa bits, so n is
  // read from the bits rather than by a float-to-int conversion (which, like the compares,
  // GCC keeps out of vector code under -ftrapping-math).
  constexpr float kMagic = 12582912.0f;
  constexpr int32_t kMagicBits = 0x4b400000;
  const float t = x * 1.44269504088896341f + kMagic;
  int32_t t_bits;
  std::memcpy(&t_bits, &t, sizeof(t_bits));
  const float n = t - kMagic;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  const int32_t scale_bits = (t_bits - kMagicBits + 127) << 23;
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof(scale));
  const float result = y * scale;
  int32_t out_bits;
  std::memcpy(&out_bits, &result, sizeof(out_bits));
  // Masks, not ternaries: GCC would sink the polynomial into a branch of a select and then
  // refuse to if-convert it.
  const int32_t keep = -static_cast<int32_t>(!big);  // all ones when d < 87
  const int32_t nan_mask = -static_cast<int32_t>(nan);
  out_bits &= keep;
  out_bits = (out_bits & ~nan_mask) | (ud & nan_mask);
  float out;
  std::memcpy(&out, &out_bits, sizeof(out));
  return out;
}
// float64 keeps the accurate libm exp (the gradcheck/reference precision).
inline double pl1_exp_neg_cpu(double d) { return std::exp(-d); }

}  // namespace batchgan
