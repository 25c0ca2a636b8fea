// Elementwise math of the equivariant layers (BGAN paper, eq. 12), shared by the CPU kernels
// and the CUDA kernels.
//
// phi(x)_b = act(bias + x_b Lambda + rho(x) Gamma): the products run in the backend (ATen);
// what is left per output element is the epilogue z = main + bias[c] + gamma_branch[set, k],
// y = act(z), and in backward dz = dy * act'(z).
#pragma once

#include <cstdint>

#include "common/macros.h"

namespace batchgan {

enum class Activation : int64_t { kIdentity = 0, kRelu = 1, kLeakyRelu = 2 };

// max/min written as selects of existing values (no arithmetic under the condition): this is
// what compilers turn into branch-free max/blend instructions; `z > 0 ? z : z * slope` stays a
// branch under the default -ftrapping-math (mispredicted on random signs, not vectorised).
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T select_max(T a, T b) {
  return a < b ? b : a;  // NaN in a propagates
}
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T select_min(T a, T b) {
  return b < a ? b : a;  // NaN in a propagates
}

// act(z); leaky_relu(z) = max(z, 0) + slope * min(z, 0). The host maps leaky_relu with slope 0
// to relu, so 0 * -inf never occurs.
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T activation_forward(Activation act, T z, T slope) {
  if (act == Activation::kIdentity) return z;
  if (act == Activation::kRelu) return select_max(z, T(0));
  return select_max(z, T(0)) + slope * select_min(z, T(0));
}

// dy * act'(z), read off the output y = act(z): with slope >= 0, y > 0 exactly when z > 0
// (the host checks negative_slope >= 0), so backward needs neither z nor a mask. At z = 0
// the derivative taken is the left one, as torch's relu/leaky_relu do. The leaky factor is
// blended arithmetically from the 0/1 mask, which vectorises.
template <typename T>
BATCHGAN_HOST_DEVICE_INLINE T activation_backward(Activation act, T dy, T y, T slope) {
  if (act == Activation::kIdentity) return dy;
  if (act == Activation::kRelu) return y > T(0) ? dy : T(0);
  const T positive = static_cast<T>(y > T(0));
  return dy * (positive + (T(1) - positive) * slope);
}

// Bias channel of element k of a sample whose channel index moves with stride chan_stride
// (H*W for NCHW, 1 for channels_last and for linear layers).
BATCHGAN_HOST_DEVICE_INLINE int64_t channel_of(int64_t k, int64_t channels, int64_t chan_stride) {
  return (k / chan_stride) % channels;
}

}  // namespace batchgan
