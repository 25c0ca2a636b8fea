// CUDA kernels of `minibatch_stddev`, written against the portable subset of
// device/device_api.h (run on the GPU from minibatch_stddev_cuda.cu, on the CPU emulator in
// tests). One block per (group r, channel block f): the block's threads stride over the
// block's (channel, position) pairs, each computing the stddev over the group's G samples,
// and meet in a block reduction; the same block then writes its share of the output.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include "device/device_api.h"
#include "ops/minibatch_stddev/minibatch_stddev.h"

namespace batchgan {
namespace cuda {

// Mean over the G members of group r at (channel ch, position p); returns the sum of squared
// deviations through sum_sq.
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ acc_t mbstd_moments(const scalar_t* __restrict__ x, int64_t r, int64_t ch, int64_t p,
                                               int64_t G, int64_t n, int64_t C, int64_t P, acc_t* sum_sq) {
  acc_t mean = 0;
  for (int64_t gi = 0; gi < G; ++gi) mean += static_cast<acc_t>(x[((gi * n + r) * C + ch) * P + p]);
  mean /= static_cast<acc_t>(G);
  acc_t ss = 0;
  for (int64_t gi = 0; gi < G; ++gi) {
    const acc_t d = static_cast<acc_t>(x[((gi * n + r) * C + ch) * P + p]) - mean;
    ss += d * d;
  }
  *sum_sq = ss;
  return mean;
}

template <typename scalar_t, typename acc_t>
__global__ void minibatch_stddev_forward_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out, int64_t G,
                                                int64_t n, int64_t C, int64_t F, int64_t c, int64_t P) {
  BATCHGAN_SHARED(acc_t, block_stat);
  const int64_t r = blockIdx.x / F, f = blockIdx.x % F;
  const int64_t CO = C + F;
  acc_t total = 0;
  for (int64_t e = threadIdx.x; e < c * P; e += blockDim.x) {
    const int64_t ch = f * c + e / P, p = e % P;
    acc_t ss;
    mbstd_moments<scalar_t, acc_t>(x, r, ch, p, G, n, C, P, &ss);
    total += mbstd_stddev(ss, G);
    for (int64_t gi = 0; gi < G; ++gi) {
      const int64_t k = gi * n + r;
      out[(k * CO + ch) * P + p] = x[(k * C + ch) * P + p];
    }
  }
  total = block_reduce_sum(total);
  if (threadIdx.x == 0) block_stat = total / static_cast<acc_t>(c * P);
  __syncthreads();
  const scalar_t s = static_cast<scalar_t>(block_stat);
  for (int64_t e = threadIdx.x; e < G * P; e += blockDim.x) {
    const int64_t k = (e / P) * n + r, p = e % P;
    out[(k * CO + C + f) * P + p] = s;
  }
}

template <typename scalar_t, typename acc_t>
__global__ void minibatch_stddev_backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ x,
                                                 scalar_t* __restrict__ grad_x, int64_t G, int64_t n, int64_t C,
                                                 int64_t F, int64_t c, int64_t P) {
  BATCHGAN_SHARED(acc_t, block_stat);
  const int64_t r = blockIdx.x / F, f = blockIdx.x % F;
  const int64_t CO = C + F;
  acc_t upstream = 0;
  for (int64_t e = threadIdx.x; e < G * P; e += blockDim.x) {
    const int64_t k = (e / P) * n + r, p = e % P;
    upstream += static_cast<acc_t>(grad[(k * CO + C + f) * P + p]);
  }
  upstream = block_reduce_sum(upstream);
  if (threadIdx.x == 0) block_stat = upstream / static_cast<acc_t>(c * P);
  __syncthreads();
  const acc_t a = block_stat;
  for (int64_t e = threadIdx.x; e < c * P; e += blockDim.x) {
    const int64_t ch = f * c + e / P, p = e % P;
    acc_t ss;
    const acc_t mean = mbstd_moments<scalar_t, acc_t>(x, r, ch, p, G, n, C, P, &ss);
    const acc_t sd = mbstd_stddev(ss, G);
    for (int64_t gi = 0; gi < G; ++gi) {
      const int64_t k = gi * n + r;
      const acc_t dev = static_cast<acc_t>(x[(k * C + ch) * P + p]) - mean;
      grad_x[(k * C + ch) * P + p] =
          static_cast<scalar_t>(static_cast<acc_t>(grad[(k * CO + ch) * P + p]) + mbstd_grad(a, dev, sd, G));
    }
  }
}

inline at::Tensor minibatch_stddev_device(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
  const MinibatchStddevInputs in = minibatch_stddev_prepare(x, group_size, num_channels);
  at::Tensor out = at::empty(in.out_shape, x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "minibatch_stddev_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    BATCHGAN_LAUNCH_KERNEL((minibatch_stddev_forward_kernel<scalar_t, acc_t>),
                           block_per_item_launch_config(in.num_groups * in.blocks), in.x.const_data_ptr<scalar_t>(),
                           out.mutable_data_ptr<scalar_t>(), in.group, in.num_groups, in.channels, in.blocks,
                           in.block_channels, in.positions);
  });
  return out;
}

inline at::Tensor minibatch_stddev_backward_device(const at::Tensor& grad, const at::Tensor& x, int64_t group_size,
                                                   int64_t num_channels) {
  const MinibatchStddevInputs in = minibatch_stddev_prepare(x, group_size, num_channels);
  const at::Tensor g = minibatch_stddev_check_grad(in, grad);
  at::Tensor grad_x = at::empty({in.batch, in.channels, in.positions}, x.options());
  if (grad_x.numel() == 0) return grad_x.view(x.sizes());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "minibatch_stddev_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    BATCHGAN_LAUNCH_KERNEL((minibatch_stddev_backward_kernel<scalar_t, acc_t>),
                           block_per_item_launch_config(in.num_groups * in.blocks), g.const_data_ptr<scalar_t>(),
                           in.x.const_data_ptr<scalar_t>(), grad_x.mutable_data_ptr<scalar_t>(), in.group,
                           in.num_groups, in.channels, in.blocks, in.block_channels, in.positions);
  });
  return grad_x.view(x.sizes());
}

}  // namespace cuda
}  // namespace batchgan
