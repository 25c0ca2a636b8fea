// Math of the minibatch standard deviation layer (Karras et al. 2018, "Progressive Growing of
// GANs", section 3; as StyleGAN2-ADA's MinibatchStdLayer), shared by the CPU and CUDA kernels.
//
// The batch of N = G * n samples is split into n groups of G with a stride: group r holds
// samples r, r + n, ..., r + (G-1) n (StyleGAN's x.reshape(G, -1, ...)). The C channels are
// split into F blocks of c = C / F. For group r and block f:
//   std[ch, p] = sqrt(1/G sum_k (x_k[ch, p] - mean_k x_k[ch, p])^2 + 1e-8)   (biased variance)
//   s[r, f]    = mean over ch in block f and all positions p of std[ch, p]
// and s[r, f] is appended as channel C + f of every sample of group r, at every position.
// Backward: with S = sum of the incoming gradient over channel C + f of the group's samples and
// positions, dL/dx_k[ch, p] += S / (c P) * (x_k[ch, p] - mean) / (G std[ch, p]) (the gradient
// through the mean cancels because the deviations sum to zero).
#pragma once

#include <cmath>
#include <cstdint>

#include "common/macros.h"

namespace batchgan {

constexpr double kMinibatchStddevEps = 1e-8;

BATCHGAN_HOST_DEVICE_INLINE float mbstd_sqrt(float x) { return ::sqrtf(x); }
BATCHGAN_HOST_DEVICE_INLINE double mbstd_sqrt(double x) { return ::sqrt(x); }

// sqrt(biased variance + eps) from the sum of squared deviations of the G group members.
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T mbstd_stddev(T sum_sq_dev, int64_t group_size) {
  return mbstd_sqrt(sum_sq_dev / static_cast<T>(group_size) + static_cast<T>(kMinibatchStddevEps));
}

// d s / d x_k[ch, p] times the upstream sum: `upstream_over_cp` is S / (c P).
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T mbstd_grad(T upstream_over_cp, T deviation, T stddev, int64_t group_size) {
  return upstream_over_cp * deviation / (static_cast<T>(group_size) * stddev);
}

}  // namespace batchgan
