// CUDA kernels of `pairwise_l1_features`, written against the portable subset of
// device/device_api.h (run on the GPU from pairwise_l1_features_cuda.cu, on the CPU emulator in tests).
//
// A block owns kPairwiseTileRows rows i of one (kernel b, set g), one thread per row, and walks
// one slice of the set's samples j (slice_len samples; more than one slice per row when the grid
// would be too small to fill the GPU, see launch_config.h) in tiles of kJ samples (kPairwiseTileJ
// forward, kPairwiseGradTileJ backward). blockIdx.x = slice * row tiles + row tile. A tile is staged in shared memory
// in chunks of kPairwiseTileC dims (coalesced over c) and every thread of the block reuses it, so M is read from global
// memory O(N / kPairwiseTileRows) times instead of O(N). A chunk is stored [c][j], rows padded by kPairwiseTilePad: a
// thread walks j for a fixed c, so it reads a row contiguously and aligned (vector loads of values every thread reads,
// a broadcast). Each thread keeps its row's kJ partial distances in registers while the chunks are walked, so any C
// fits. Everything a thread keeps across a loop is indexed by compile-time constants (unrolled loops), so it stays in
// registers: no stack frame. Every thread runs every loop and barrier; rows past the set and samples past the set are
// masked, never returned from early. A tile always takes at least one chunk (C = 0 too), so what is staged with its
// first chunk (labels, h) is behind a barrier before it is read, and read before the barrier that precedes the next
// tile's staging.
//
// kP is the number of population accumulators: 1 without split (no labels are read), else
// kPairwiseMaxPopulations. Summation order: a distance adds its dims in ascending c, a row's
// feature its terms in ascending j; a row's gradient adds, per tile of kPairwiseGradTileJ
// samples, the tile's sum (ascending j) to the running one. The CPU kernel sums in other orders,
// so the two agree to rounding (the tests' tolerances), not bit for bit.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <type_traits>

#include "device/device_api.h"
#include "ops/pairwise_l1_features/pairwise_l1_features.h"

namespace batchgan {
namespace cuda {

// A staged chunk: kPairwiseTileC dims x kJ samples.
template <typename acc_t, int kJ>
using Pl1Tile = acc_t[kPairwiseTileC][kJ + kPairwiseTilePad];

// Chunks of kPairwiseTileC dims a tile is staged in; at least one (see above).
__device__ __forceinline__ int pl1_num_chunks(int C) {
  return C > kPairwiseTileC ? (C + kPairwiseTileC - 1) / kPairwiseTileC : 1;
}

// Dims of the chunk starting at c0.
__device__ __forceinline__ int pl1_chunk_dims(int C, int c0) {
  return C - c0 < kPairwiseTileC ? C - c0 : kPairwiseTileC;
}

// Stages M[j0 + jj, b, c0 + cc] of the set (set_m: the set's first sample at kernel b; samples
// `stride` apart) in tile[cc][jj], 0 from sample n (the slice's end) on and outside the dims.
template <int kJ, typename scalar_t, typename acc_t>
__device__ __forceinline__ void pl1_stage_chunk(Pl1Tile<acc_t, kJ>& tile, const scalar_t* __restrict__ set_m,
                                                int64_t stride, int n, int C, int j0, int c0) {
  for (int t = threadIdx.x; t < kJ * kPairwiseTileC; t += blockDim.x) {
    const int jj = t / kPairwiseTileC;
    const int cc = t % kPairwiseTileC;
    const int j = j0 + jj, c = c0 + cc;
    tile[cc][jj] = (j < n && c < C) ? static_cast<acc_t>(set_m[j * stride + c]) : acc_t(0);
  }
}

// dist[jj] += |M_i,b,c0+cc - tile[cc][jj]| for cc < cn in order (m_row: row i at dim c0).
template <int kJ, typename scalar_t, typename acc_t>
__device__ __forceinline__ void pl1_add_chunk_distances(const Pl1Tile<acc_t, kJ>& tile,
                                                        const scalar_t* __restrict__ m_row, int cn, acc_t (&dist)[kJ]) {
  for (int cc = 0; cc < cn; ++cc) {
    const acc_t m = static_cast<acc_t>(m_row[cc]);
#pragma unroll
    for (int jj = 0; jj < kJ; ++jj) dist[jj] += pl1_abs(tile[cc][jj] - m);
  }
}

template <typename scalar_t, typename acc_t, int kP>
__global__ void pairwise_l1_forward_kernel(const scalar_t* __restrict__ M, const int32_t* __restrict__ labels,
                                           const acc_t* __restrict__ scale, scalar_t* __restrict__ out,
                                           acc_t* __restrict__ partial, int64_t set_size, int64_t B, int64_t dims,
                                           int64_t P, bool exclude_self, int64_t slice_len) {
  // partial: nullptr with one slice (out gets the scaled sums), else (slices, N, P, B), the
  // slices' unscaled sums.
  constexpr int kJ = kPairwiseTileJ;
  using Tile = Pl1Tile<acc_t, kJ>;
  alignas(16) BATCHGAN_SHARED(Tile, tile);
  BATCHGAN_SHARED(int32_t, tile_labels, [kJ]);
  const int n = static_cast<int>(set_size), C = static_cast<int>(dims);
  const int64_t b = blockIdx.y;
  const int64_t first_row = static_cast<int64_t>(blockIdx.z) * n;
  const int row_tiles = static_cast<int>((n + blockDim.x - 1) / blockDim.x);
  const int slice = static_cast<int>(blockIdx.x) / row_tiles;
  const int i = static_cast<int>((blockIdx.x % row_tiles) * blockDim.x + threadIdx.x);
  const bool active = i < n;
  const int j_begin = slice * static_cast<int>(slice_len);
  const int j_end = n - j_begin < slice_len ? n : j_begin + static_cast<int>(slice_len);
  const int64_t row = first_row + i;
  const int64_t stride = B * C;
  const scalar_t* __restrict__ set_m = M + (first_row * B + b) * C;
  const scalar_t* __restrict__ m_row = set_m + i * stride;
  const int chunks = pl1_num_chunks(C);
  acc_t sums[kP];
#pragma unroll
  for (int p = 0; p < kP; ++p) sums[p] = acc_t(0);
  acc_t dist[kJ];
  for (int j0 = j_begin; j0 < j_end; j0 += kJ) {
#pragma unroll
    for (int jj = 0; jj < kJ; ++jj) dist[jj] = acc_t(0);
    for (int k = 0; k < chunks; ++k) {
      const int c0 = k * kPairwiseTileC;
      pl1_stage_chunk<kJ, scalar_t, acc_t>(tile, set_m, stride, j_end, C, j0, c0);
      if (kP > 1 && k == 0 && threadIdx.x < kJ) {
        const int j = j0 + static_cast<int>(threadIdx.x);
        tile_labels[threadIdx.x] = j < j_end ? labels[first_row + j] : 0;
      }
      __syncthreads();
      if (active) {
        pl1_add_chunk_distances<kJ, scalar_t, acc_t>(tile, m_row + c0, pl1_chunk_dims(C, c0), dist);
        if (k == chunks - 1) {
          // The tile's distances are complete: its terms go to the row's sums, j in order.
#pragma unroll
          for (int jj = 0; jj < kJ; ++jj) {
            const int j = j0 + jj;
            if (j < j_end && !(exclude_self && j == i)) {
              const acc_t e = pl1_exp_neg_device(dist[jj]);
              if (kP == 1) {
                sums[0] += e;
              } else {
                const int32_t label = tile_labels[jj];
#pragma unroll
                for (int p = 0; p < kP; ++p) sums[p] = label == p ? sums[p] + e : sums[p];
              }
            }
          }
        }
      }
      // The next chunk (or tile) may overwrite the tile only after every thread has read it.
      __syncthreads();
    }
  }
  if (active) {
    const int64_t partial_row = (static_cast<int64_t>(slice) * gridDim.z * n + row) * P;
#pragma unroll
    for (int p = 0; p < kP; ++p) {
      if (p >= P) continue;
      if (partial == nullptr) {
        out[(row * P + p) * B + b] = static_cast<scalar_t>(sums[p] * scale[row * P + p]);
      } else {
        partial[(partial_row + p) * B + b] = sums[p];
      }
    }
  }
}

// acc[cc] -= sum_jj coef[jj] sign(M_i,b,c0+cc - tile[cc][jj]) (j in order) for cc < cn: row i's
// gradient over one staged chunk, in registers (cc unrolled, the cc >= cn tail masked).
template <int kJ, typename scalar_t, typename acc_t>
__device__ __forceinline__ void pl1_add_chunk_gradient(const Pl1Tile<acc_t, kJ>& tile,
                                                       const scalar_t* __restrict__ m_row, int cn,
                                                       const acc_t (&coef)[kJ], acc_t (&acc)[kPairwiseTileC]) {
#pragma unroll
  for (int cc = 0; cc < kPairwiseTileC; ++cc) {
    if (cc < cn) {
      const acc_t m = static_cast<acc_t>(m_row[cc]);
      acc_t s = 0;
#pragma unroll
      for (int jj = 0; jj < kJ; ++jj) s += coef[jj] * pl1_sign(m - tile[cc][jj]);
      acc[cc] -= s;
    }
  }
}

// grad_m (acc_t, (N, B, C); zero-initialised when C > kPairwiseTileC): each thread writes its
// own row only, so no atomics. Per tile, coef_j = c_b(i, j) (h[i, label(j), b] + h[j, label(i), b])
// is formed from h staged in shared memory (the tile's h[j, :, b] and labels with its first
// chunk; the block's rows' h[i, :, b] once), then row i's gradient is accumulated in registers:
// with C <= kPairwiseTileC (one chunk) over the whole walk, from the chunk the distances were
// read from, and written once; with more dims the tile's chunks are staged again once the
// coefficients are known and each chunk's sums are added to grad_m.
template <typename scalar_t, typename acc_t, int kP>
__global__ void pairwise_l1_backward_kernel(const acc_t* __restrict__ h, const scalar_t* __restrict__ M,
                                            const int32_t* __restrict__ labels, acc_t* __restrict__ grad_m,
                                            int64_t set_size, int64_t B, int64_t dims, int64_t P, int64_t slice_len) {
  // grad_m: (slices, N, B, C), each slice's own gradient (one slice: (N, B, C)).
  constexpr int kJ = kPairwiseGradTileJ;
  using Tile = Pl1Tile<acc_t, kJ>;
  alignas(16) BATCHGAN_SHARED(Tile, tile);
  BATCHGAN_SHARED(acc_t, tile_h, [kP][kJ]);  // h[j0 + jj, p, b]
  BATCHGAN_SHARED(int32_t, tile_labels, [kJ]);
  BATCHGAN_SHARED(acc_t, row_h, [kP][kPairwiseTileRows]);  // h[i, p, b] of the block's rows (kP > 1)
  const int n = static_cast<int>(set_size), C = static_cast<int>(dims);
  const int64_t b = blockIdx.y;
  const int64_t first_row = static_cast<int64_t>(blockIdx.z) * n;
  const int row_tiles = static_cast<int>((n + blockDim.x - 1) / blockDim.x);
  const int slice = static_cast<int>(blockIdx.x) / row_tiles;
  const int i = static_cast<int>((blockIdx.x % row_tiles) * blockDim.x + threadIdx.x);
  const bool active = i < n;
  const int j_begin = slice * static_cast<int>(slice_len);
  const int j_end = n - j_begin < slice_len ? n : j_begin + static_cast<int>(slice_len);
  const int64_t stride = B * C;
  const scalar_t* __restrict__ set_m = M + (first_row * B + b) * C;
  const scalar_t* __restrict__ m_row = set_m + i * stride;
  acc_t* __restrict__ grad_row =
      grad_m + (static_cast<int64_t>(slice) * gridDim.z * n + first_row + i) * stride + b * C;
  // h[first_row + j, p, b] = set_h[(j * P + p) * B].
  const acc_t* __restrict__ set_h = h + first_row * P * B + b;
  const int32_t* __restrict__ set_labels = labels + first_row;
  const int chunks = pl1_num_chunks(C);
  int32_t label_i = 0;
  acc_t h_i = 0;  // h[i, 0, b] (kP = 1)
  if (active) {
    if (kP == 1) {
      h_i = set_h[i * B];
    } else {
      label_i = set_labels[i];
      for (int p = 0; p < P; ++p) row_h[p][threadIdx.x] = set_h[(i * P + p) * B];
    }
  }
  // (row_h is read by its own thread only: no barrier needed.)
  acc_t acc[kPairwiseTileC];
#pragma unroll
  for (int cc = 0; cc < kPairwiseTileC; ++cc) acc[cc] = acc_t(0);
  acc_t coef[kJ];
  for (int j0 = j_begin; j0 < j_end; j0 += kJ) {
#pragma unroll
    for (int jj = 0; jj < kJ; ++jj) coef[jj] = acc_t(0);
    for (int k = 0; k < chunks; ++k) {
      const int c0 = k * kPairwiseTileC;
      pl1_stage_chunk<kJ, scalar_t, acc_t>(tile, set_m, stride, j_end, C, j0, c0);
      if (k == 0) {
        for (int t = threadIdx.x; t < kP * kJ; t += blockDim.x) {
          const int p = t / kJ, jj = t % kJ, j = j0 + jj;
          tile_h[p][jj] = (j < j_end && p < P) ? set_h[(static_cast<int64_t>(j) * P + p) * B] : acc_t(0);
          if (kP > 1 && p == 0) tile_labels[jj] = j < j_end ? set_labels[j] : 0;
        }
      }
      __syncthreads();
      if (active) {
        const int cn = pl1_chunk_dims(C, c0);
        pl1_add_chunk_distances<kJ, scalar_t, acc_t>(tile, m_row + c0, cn, coef);
        if (k == chunks - 1) {
          // coef becomes c_b(i, j) (h[i, label(j), b] + h[j, label(i), b]); the j = i term is
          // multiplied by sign(0) = 0 in the gradient.
#pragma unroll
          for (int jj = 0; jj < kJ; ++jj) {
            const acc_t h_ij = kP == 1 ? h_i : row_h[tile_labels[jj]][threadIdx.x];
            coef[jj] = j0 + jj < j_end ? pl1_exp_neg_device(coef[jj]) * (h_ij + tile_h[label_i][jj]) : acc_t(0);
          }
          if (chunks == 1) pl1_add_chunk_gradient<kJ, scalar_t, acc_t>(tile, m_row, cn, coef, acc);
        }
      }
      __syncthreads();
    }
    for (int k = 0; chunks > 1 && k < chunks; ++k) {
      const int c0 = k * kPairwiseTileC;
      pl1_stage_chunk<kJ, scalar_t, acc_t>(tile, set_m, stride, j_end, C, j0, c0);
      __syncthreads();
      if (active) {
        const int cn = pl1_chunk_dims(C, c0);
        pl1_add_chunk_gradient<kJ, scalar_t, acc_t>(tile, m_row + c0, cn, coef, acc);
#pragma unroll
        for (int cc = 0; cc < kPairwiseTileC; ++cc) {
          if (cc < cn) grad_row[c0 + cc] += acc[cc];
          acc[cc] = acc_t(0);
        }
      }
      __syncthreads();
    }
  }
  if (chunks == 1 && active) {
#pragma unroll
    for (int cc = 0; cc < kPairwiseTileC; ++cc) {
      if (cc < C) grad_row[cc] = acc[cc];
    }
  }
}

// Calls fn with the kernels' kP for P populations: 1, or kPairwiseMaxPopulations.
template <typename Fn>
void pl1_dispatch_populations(int64_t P, Fn&& fn) {
  if (P == 1) {
    fn(std::integral_constant<int, 1>());
  } else {
    fn(std::integral_constant<int, static_cast<int>(kPairwiseMaxPopulations)>());
  }
}

inline at::Tensor pairwise_l1_features_device(const at::Tensor& M, int64_t num_sets, bool exclude_self, bool mean,
                                              const std::optional<at::Tensor>& split, int64_t num_populations) {
  const PairwiseL1Inputs in = pairwise_l1_prepare(M, num_sets, exclude_self, mean, split, num_populations);
  at::Tensor out = at::empty(pairwise_l1_output_shape(in), M.options());
  if (out.numel() == 0) return out;
  const PairwiseLaunch launch = pairwise_tile_launch_config(in.set_size, in.b, in.c, in.num_sets);
  // Several slices: each writes its unscaled sums, added here in slice order, then scaled.
  at::Tensor partial;
  if (launch.slices > 1) {
    partial = at::empty({launch.slices, in.n, in.populations, in.b}, M.options().dtype(in.acc_type));
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, M.scalar_type(), "pairwise_l1_features_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    pl1_dispatch_populations(in.populations, [&](auto kP) {
      BATCHGAN_LAUNCH_KERNEL((pairwise_l1_forward_kernel<scalar_t, acc_t, decltype(kP)::value>), launch.cfg,
                             in.m.const_data_ptr<scalar_t>(), in.labels.const_data_ptr<int32_t>(),
                             in.scale.const_data_ptr<acc_t>(), out.mutable_data_ptr<scalar_t>(),
                             partial.defined() ? partial.mutable_data_ptr<acc_t>() : nullptr, in.set_size, in.b, in.c,
                             in.populations, in.exclude_self, launch.slice_len);
    });
  });
  if (partial.defined()) out.copy_((partial.sum(0) * in.scale.unsqueeze(2)).view(out.sizes()));
  return out;
}

inline at::Tensor pairwise_l1_features_backward_device(const at::Tensor& grad, const at::Tensor& M, int64_t num_sets,
                                                       bool exclude_self, bool mean,
                                                       const std::optional<at::Tensor>& split,
                                                       int64_t num_populations) {
  const PairwiseL1Inputs in = pairwise_l1_prepare(M, num_sets, exclude_self, mean, split, num_populations);
  const at::Tensor h = pairwise_l1_scaled_grad(in, grad);  // (N, P, B), acc dtype
  if (in.b * in.c == 0) return at::zeros({in.n, in.b, in.c}, M.options());
  const PairwiseLaunch launch = pairwise_tile_launch_config(in.set_size, in.b, in.c, in.num_sets);
  // One gradient per slice, added here in slice order. With one chunk of dims the kernel writes
  // every element; with more it adds to it.
  std::vector<int64_t> shape = {in.n, in.b, in.c};
  if (launch.slices > 1) shape.insert(shape.begin(), launch.slices);
  const at::TensorOptions acc_options = M.options().dtype(in.acc_type);
  at::Tensor grad_m = in.c <= kPairwiseTileC ? at::empty(shape, acc_options) : at::zeros(shape, acc_options);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, M.scalar_type(), "pairwise_l1_features_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    pl1_dispatch_populations(in.populations, [&](auto kP) {
      BATCHGAN_LAUNCH_KERNEL((pairwise_l1_backward_kernel<scalar_t, acc_t, decltype(kP)::value>), launch.cfg,
                             h.const_data_ptr<acc_t>(), in.m.const_data_ptr<scalar_t>(),
                             in.labels.const_data_ptr<int32_t>(), grad_m.mutable_data_ptr<acc_t>(), in.set_size, in.b,
                             in.c, in.populations, launch.slice_len);
    });
  });
  if (launch.slices > 1) grad_m = grad_m.sum(0);
  return grad_m.to(M.scalar_type());
}

}  // namespace cuda
}  // namespace batchgan
