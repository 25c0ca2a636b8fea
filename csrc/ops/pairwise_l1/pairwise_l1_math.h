// Math of the minibatch-discrimination features (Salimans et al. 2016, section 3.2), shared by
// the CPU kernel and the CUDA kernel.
//
//   c_b(i, j) = exp(-||M_i,b - M_j,b||_1)                         (paper, c_b(x_i, x_j))
//   o[i, p, b] = s[i, p] * sum_{j in set(i), label(j) = p, j != i if exclude_self} c_b(i, j)
// with s[i, p] = 1, or 1 / (number of such j) for mean. Since c is symmetric and
// d|u|/du = sign(u) (sign(0) = 0, so the j = i term never contributes):
//   dL/dM[k, b, :] = -sum_j sign(M_k,b - M_j,b) c_b(k, j) (h[k, label(j), b] + h[j, label(k), b])
// with h[i, p, b] = dL/do[i, p, b] * s[i, p]. Both directions only need M and the O(N)
// weights, so nothing of size N x N is ever stored.
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

// exp(-d) for float on the CPU: a branch-free Cephes-style exp (round-to-nearest range
// reduction by the 1.5*2^23 trick, degree-6 polynomial, exponent assembled in the bits), so
// that the loop over j vectorises; glibc's expf is a call the compiler cannot vectorise
// without -ffast-math. Relative error ~2 ulp; distances beyond 87 (exp < 1.7e-38, the float
// normal range) give 0.
inline float pl1_exp_neg_cpu(float d) {
  // Comparisons written so that a NaN distance gives NaN (x = NaN), not 0.
  const float x = d >= 87.0f ? -87.0f : -d;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504088896341f + magic) - magic;
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
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return d >= 87.0f ? 0.0f : y * scale;
}
// float64 keeps the accurate libm exp (the gradcheck/reference precision).
inline double pl1_exp_neg_cpu(double d) { return std::exp(-d); }

}  // namespace batchgan
