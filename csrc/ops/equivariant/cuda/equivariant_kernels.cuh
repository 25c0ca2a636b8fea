// CUDA kernels of the equivariant layers (the four fused passes of equivariant.h), written
// against the portable subset of device/device_api.h: nvcc compiles them for the GPU
// (equivariant_cuda.cu), the host compiler for the CPU emulator (tests).
//
// The per-set reductions give each thread one element k of one set and let it walk the S
// samples of the set: consecutive threads read consecutive addresses (coalesced), no atomics,
// no barriers, and the sum is taken in a fixed order.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include "device/device_api.h"
#include "ops/equivariant/equivariant.h"
#include "ops/equivariant/equivariant_math.h"

namespace batchgan {
namespace cuda {

// The kernels below take their sizes as IntDividers of index_t (device_api.h), so mapping a
// flat index to (sample, element) costs no hardware division.

// out[g, k] = mean over s of x[g*S + s, k]   (rho of eq. 11, per set)
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void set_mean_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out, index_t set_size,
                                IntDivider<index_t> inner, index_t total) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const auto gk = inner.divmod(i);
    const scalar_t* src = x + gk.div * set_size * inner.divisor + gk.mod;
    acc_t acc = 0;
    for (index_t s = 0; s < set_size; ++s) acc += static_cast<acc_t>(src[s * inner.divisor]);
    out[i] = static_cast<scalar_t>(acc / static_cast<acc_t>(set_size));
  }
}

// y[n, k] = act(y[n, k] + bias[c(k)] + gm[set(n), k])   (eq. 12), in place; c(k) = (k / chan_stride)
// mod channels.
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void epilogue_forward_kernel(scalar_t* __restrict__ y, const scalar_t* __restrict__ gm,
                                        const acc_t* __restrict__ bias, IntDivider<index_t> set_size,
                                        IntDivider<index_t> inner, IntDivider<index_t> channels,
                                        IntDivider<index_t> chan_stride, Activation act, acc_t slope, index_t total) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const auto nk = inner.divmod(i);
    const acc_t z = static_cast<acc_t>(y[i]) + bias[channels.mod(chan_stride.div(nk.mod))] +
                    static_cast<acc_t>(gm[set_size.div(nk.div) * inner.divisor + nk.mod]);
    y[i] = static_cast<scalar_t>(activation_forward(act, z, slope));
  }
}

// dz[n, k] = act'(y) dy, and dzs[g, k] = sum over the set of dz, one thread per (g, k).
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void epilogue_backward_kernel(const scalar_t* __restrict__ dy, const scalar_t* __restrict__ y,
                                         scalar_t* __restrict__ dz, scalar_t* __restrict__ dzs, index_t set_size,
                                         IntDivider<index_t> inner, Activation act, acc_t slope, index_t total) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const auto gk = inner.divmod(i);
    acc_t acc = 0;
    for (index_t s = 0; s < set_size; ++s) {
      const index_t j = (gk.div * set_size + s) * inner.divisor + gk.mod;
      const acc_t d = activation_backward(act, static_cast<acc_t>(dy[j]), static_cast<acc_t>(y[j]), slope);
      dz[j] = static_cast<scalar_t>(d);
      acc += d;
    }
    dzs[i] = static_cast<scalar_t>(acc);
  }
}

// dst[n, k] = (accumulate ? dst[n, k] : 0) + src[set(n), k] / S
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void broadcast_add_kernel(scalar_t* __restrict__ dst, const scalar_t* __restrict__ src,
                                     IntDivider<index_t> set_size, IntDivider<index_t> inner, bool accumulate,
                                     index_t total) {
  const acc_t inv = acc_t(1) / static_cast<acc_t>(set_size.divisor);
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const auto nk = inner.divmod(i);
    const acc_t base = accumulate ? static_cast<acc_t>(dst[i]) : acc_t(0);
    dst[i] = static_cast<scalar_t>(base + static_cast<acc_t>(src[set_size.div(nk.div) * inner.divisor + nk.mod]) * inv);
  }
}

// The backend of equivariant.h's orchestration: host launchers of the kernels above.
struct DeviceKernels {
  // The fused small-K linear path of equivariant.h is a CPU optimisation (on the GPU the
  // product is cuBLAS's and the epilogue a separate launch either way).
  static constexpr bool kFusedSmallLinear = false;

  // Every kernel's largest index is below batch * inner (the batch-sized tensors).
  static void set_mean(const at::Tensor& x, at::Tensor& out, const SetLayout& l) {
    const int64_t total = l.num_sets * l.inner;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "set_mean_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      dispatch_index_type(l.batch * l.inner, [&]<typename index_t>() {
        BATCHGAN_LAUNCH_KERNEL((set_mean_kernel<scalar_t, acc_t, index_t>), elementwise_launch_config(total),
                               x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                               static_cast<index_t>(l.set_size), IntDivider<index_t>(l.inner),
                               static_cast<index_t>(total));
      });
    });
  }

  static void epilogue_forward(at::Tensor& y, const at::Tensor& gm, const at::Tensor& bias, const SetLayout& l,
                               Activation act, double slope) {
    const int64_t total = l.batch * l.inner;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "equivariant_epilogue_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      dispatch_index_type(total, [&]<typename index_t>() {
        BATCHGAN_LAUNCH_KERNEL(
            (epilogue_forward_kernel<scalar_t, acc_t, index_t>), elementwise_launch_config(total),
            y.mutable_data_ptr<scalar_t>(), gm.const_data_ptr<scalar_t>(), bias.const_data_ptr<acc_t>(),
            IntDivider<index_t>(l.set_size), IntDivider<index_t>(l.inner), IntDivider<index_t>(l.channels),
            IntDivider<index_t>(l.chan_stride), act, static_cast<acc_t>(slope), static_cast<index_t>(total));
      });
    });
  }

  static void epilogue_backward(const at::Tensor& grad, const at::Tensor& out, at::Tensor& dz, at::Tensor& dzs,
                                const SetLayout& l, Activation act, double slope) {
    const int64_t total = l.num_sets * l.inner;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "equivariant_epilogue_bwd_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      dispatch_index_type(l.batch * l.inner, [&]<typename index_t>() {
        BATCHGAN_LAUNCH_KERNEL((epilogue_backward_kernel<scalar_t, acc_t, index_t>), elementwise_launch_config(total),
                               grad.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(),
                               dz.mutable_data_ptr<scalar_t>(), dzs.mutable_data_ptr<scalar_t>(),
                               static_cast<index_t>(l.set_size), IntDivider<index_t>(l.inner), act,
                               static_cast<acc_t>(slope), static_cast<index_t>(total));
      });
    });
  }

  static void broadcast_add(at::Tensor& dst, const at::Tensor& src, const SetLayout& l, bool accumulate) {
    const int64_t total = l.batch * l.inner;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dst.scalar_type(), "set_broadcast_add_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      dispatch_index_type(total, [&]<typename index_t>() {
        BATCHGAN_LAUNCH_KERNEL((broadcast_add_kernel<scalar_t, acc_t, index_t>), elementwise_launch_config(total),
                               dst.mutable_data_ptr<scalar_t>(), src.const_data_ptr<scalar_t>(),
                               IntDivider<index_t>(l.set_size), IntDivider<index_t>(l.inner), accumulate,
                               static_cast<index_t>(total));
      });
    });
  }
};

}  // namespace cuda
}  // namespace batchgan
