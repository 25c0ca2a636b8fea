// CUDA kernels of `pairwise_l1_features`, written against the portable subset of
// device/device_api.h (run on the GPU from pairwise_l1_features_cuda.cu, on the CPU emulator in tests).
//
// A block owns kPairwiseTileRows rows i of one (kernel b, set g), one thread per row, and walks
// the set's samples j in tiles: kPairwiseTileJ samples x kPairwiseTileC dims of M are staged in
// shared memory (coalesced over c) and every thread of the block reuses them, so M is read
// from global memory O(N / kPairwiseTileRows) times instead of O(N). Each thread keeps the
// kPairwiseTileJ partial distances of its row in registers while the dims are walked in
// chunks, so any C fits. Every thread runs every loop and barrier; rows past the set and
// samples past the set are masked, never returned from early.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include "device/device_api.h"
#include "ops/pairwise_l1_features/pairwise_l1_features.h"

namespace batchgan {
namespace cuda {

// Stages M[g*n + j0 + jj, b, c0 + cc] in tile[jj][cc] (0 outside the set / dims).
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void pl1_load_tile(acc_t (*tile)[kPairwiseTileC], const scalar_t* __restrict__ M,
                                              int64_t first_row, int64_t n, int64_t B, int64_t C, int64_t b, int64_t j0,
                                              int64_t c0) {
  for (int t = threadIdx.x; t < kPairwiseTileJ * kPairwiseTileC; t += blockDim.x) {
    const int jj = t / kPairwiseTileC;
    const int cc = t % kPairwiseTileC;
    const int64_t j = j0 + jj, c = c0 + cc;
    tile[jj][cc] = (j < n && c < C) ? static_cast<acc_t>(M[((first_row + j) * B + b) * C + c]) : acc_t(0);
  }
}

// dist[jj] = ||M_i,b - M_(j0+jj),b||_1 for the tile of samples starting at j0 (all threads).
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void pl1_tile_distances(acc_t (*tile)[kPairwiseTileC], acc_t* dist,
                                                   const scalar_t* __restrict__ M, int64_t first_row, int64_t n,
                                                   int64_t B, int64_t C, int64_t b, int64_t i, bool active,
                                                   int64_t j0) {
#pragma unroll
  for (int jj = 0; jj < kPairwiseTileJ; ++jj) dist[jj] = acc_t(0);
  for (int64_t c0 = 0; c0 < C; c0 += kPairwiseTileC) {
    pl1_load_tile<scalar_t, acc_t>(tile, M, first_row, n, B, C, b, j0, c0);
    __syncthreads();
    if (active) {
      const int cn = static_cast<int>(C - c0 < kPairwiseTileC ? C - c0 : kPairwiseTileC);
      for (int cc = 0; cc < cn; ++cc) {
        const acc_t m = static_cast<acc_t>(M[((first_row + i) * B + b) * C + c0 + cc]);
#pragma unroll
        for (int jj = 0; jj < kPairwiseTileJ; ++jj) dist[jj] += pl1_abs(tile[jj][cc] - m);
      }
    }
    // The next chunk may overwrite the tile only after every thread has read it.
    __syncthreads();
  }
}

template <typename scalar_t, typename acc_t>
__global__ void pairwise_l1_forward_kernel(const scalar_t* __restrict__ M, const int32_t* __restrict__ labels,
                                           const acc_t* __restrict__ scale, scalar_t* __restrict__ out, int64_t n,
                                           int64_t B, int64_t C, int64_t P, bool exclude_self) {
  BATCHGAN_SHARED(acc_t, tile, [kPairwiseTileJ][kPairwiseTileC]);
  const int64_t b = blockIdx.y;
  const int64_t first_row = static_cast<int64_t>(blockIdx.z) * n;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = i < n;
  acc_t sums[kPairwiseMaxPopulations];
  for (int p = 0; p < kPairwiseMaxPopulations; ++p) sums[p] = acc_t(0);
  acc_t dist[kPairwiseTileJ];
  for (int64_t j0 = 0; j0 < n; j0 += kPairwiseTileJ) {
    pl1_tile_distances<scalar_t, acc_t>(tile, dist, M, first_row, n, B, C, b, i, active, j0);
    if (active) {
#pragma unroll
      for (int jj = 0; jj < kPairwiseTileJ; ++jj) {
        const int64_t j = j0 + jj;
        if (j < n && !(exclude_self && j == i)) sums[labels[first_row + j]] += pl1_exp_neg_device(dist[jj]);
      }
    }
  }
  if (active) {
    const int64_t row = first_row + i;
    for (int64_t p = 0; p < P; ++p) out[(row * P + p) * B + b] = static_cast<scalar_t>(sums[p] * scale[row * P + p]);
  }
}

// grad_m (acc_t, (N, B, C), zero-initialised): each thread adds its own row only, so no atomics.
template <typename scalar_t, typename acc_t>
__global__ void pairwise_l1_backward_kernel(const acc_t* __restrict__ h, const scalar_t* __restrict__ M,
                                            const int32_t* __restrict__ labels, acc_t* __restrict__ grad_m, int64_t n,
                                            int64_t B, int64_t C, int64_t P) {
  BATCHGAN_SHARED(acc_t, tile, [kPairwiseTileJ][kPairwiseTileC]);
  const int64_t b = blockIdx.y;
  const int64_t first_row = static_cast<int64_t>(blockIdx.z) * n;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = i < n;
  const int64_t row = first_row + i;
  const int32_t label_i = active ? labels[row] : 0;
  acc_t dist[kPairwiseTileJ];
  for (int64_t j0 = 0; j0 < n; j0 += kPairwiseTileJ) {
    pl1_tile_distances<scalar_t, acc_t>(tile, dist, M, first_row, n, B, C, b, i, active, j0);
    // dist becomes coef_j = c_b(i, j) (h[i, label(j), b] + h[j, label(i), b]); the j = i
    // term is multiplied by sign(0) = 0 below.
    if (active) {
#pragma unroll
      for (int jj = 0; jj < kPairwiseTileJ; ++jj) {
        const int64_t j = first_row + j0 + jj;
        dist[jj] = (j0 + jj < n) ? pl1_exp_neg_device(dist[jj]) *
                                       (h[(row * P + labels[j]) * B + b] + h[(j * P + label_i) * B + b])
                                 : acc_t(0);
      }
    }
    for (int64_t c0 = 0; c0 < C; c0 += kPairwiseTileC) {
      pl1_load_tile<scalar_t, acc_t>(tile, M, first_row, n, B, C, b, j0, c0);
      __syncthreads();
      if (active) {
        const int cn = static_cast<int>(C - c0 < kPairwiseTileC ? C - c0 : kPairwiseTileC);
        for (int cc = 0; cc < cn; ++cc) {
          const acc_t m = static_cast<acc_t>(M[(row * B + b) * C + c0 + cc]);
          acc_t s = 0;
#pragma unroll
          for (int jj = 0; jj < kPairwiseTileJ; ++jj) s += dist[jj] * pl1_sign(m - tile[jj][cc]);
          grad_m[(row * B + b) * C + c0 + cc] -= s;
        }
      }
      __syncthreads();
    }
  }
}

inline at::Tensor pairwise_l1_features_device(const at::Tensor& M, int64_t num_sets, bool exclude_self, bool mean,
                                              const std::optional<at::Tensor>& split, int64_t num_populations) {
  const PairwiseL1Inputs in = pairwise_l1_prepare(M, num_sets, exclude_self, mean, split, num_populations);
  at::Tensor out = at::empty(pairwise_l1_output_shape(in), M.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, M.scalar_type(), "pairwise_l1_features_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    BATCHGAN_LAUNCH_KERNEL((pairwise_l1_forward_kernel<scalar_t, acc_t>),
                           pairwise_tile_launch_config(in.set_size, in.b, in.num_sets), in.m.const_data_ptr<scalar_t>(),
                           in.labels.const_data_ptr<int32_t>(), in.scale.const_data_ptr<acc_t>(),
                           out.mutable_data_ptr<scalar_t>(), in.set_size, in.b, in.c, in.populations, in.exclude_self);
  });
  return out;
}

inline at::Tensor pairwise_l1_features_backward_device(const at::Tensor& grad, const at::Tensor& M, int64_t num_sets,
                                                       bool exclude_self, bool mean,
                                                       const std::optional<at::Tensor>& split,
                                                       int64_t num_populations) {
  const PairwiseL1Inputs in = pairwise_l1_prepare(M, num_sets, exclude_self, mean, split, num_populations);
  const at::Tensor h = pairwise_l1_scaled_grad(in, grad);  // (N, P, B), acc dtype
  at::Tensor grad_m = at::zeros({in.n, in.b, in.c}, M.options().dtype(in.acc_type));
  if (grad_m.numel() == 0) return grad_m.to(M.scalar_type());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, M.scalar_type(), "pairwise_l1_features_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    BATCHGAN_LAUNCH_KERNEL((pairwise_l1_backward_kernel<scalar_t, acc_t>),
                           pairwise_tile_launch_config(in.set_size, in.b, in.num_sets), h.const_data_ptr<acc_t>(),
                           in.m.const_data_ptr<scalar_t>(), in.labels.const_data_ptr<int32_t>(),
                           grad_m.mutable_data_ptr<acc_t>(), in.set_size, in.b, in.c, in.populations);
  });
  return grad_m.to(M.scalar_type());
}

}  // namespace cuda
}  // namespace batchgan
