// CPU kernels of `pairwise_l1_features`. M is copied once to a (G, B, C, n_pad) layout in the
// accumulation dtype, n padded with zeros to a multiple of kLanes, so that every inner loop
// runs over j on contiguous memory in fixed blocks of kLanes that the compiler keeps in vector
// registers (|.|, sign and the polynomial exp of pairwise_l1_features_math.h are all branch-free).
// Two schedules:
//  - symmetric (one population, >= kSymmetricMinSlabs (set, kernel) slabs, the common case):
//    parallel over slabs, each pair (i, j) computed once for both rows;
//  - rows (split labels, or few slabs): parallel over rows (set, kernel, sample i), each row a
//    pass over all j of its set.
// Scratch per task is O(n C) (one slab's row accumulators) besides the O(N B C) copies.
// Measured slower than this block form (issue 14, AVX-512 VM, thread CPU time of one call at
// N=256, one thread, A/B in one process): the row's distances as a separate pass over j before
// the exps (forward +30-60%); the backward as a coefficient pass then one streaming pass per c
// (+0-8%); sign(x) built from x's bits instead of two compares (backward +10-16%).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/cpu_multiversion.h"
#include "common/dispatch_int.h"
#include "ops/pairwise_l1_features/pairwise_l1_features.h"
#include "ops/pairwise_l1_features/pairwise_l1_features_register.h"

namespace batchgan {
namespace {

// The row loops are multiversioned (common/cpu_multiversion.h); each call covers a whole row
// (n samples), so the indirect call is amortised.

// Samples per block of the row loops: the block's distances stay in registers while the C
// dims are accumulated (two AVX2 vectors of floats).
constexpr int64_t kLanes = 16;
// Scalar operations per parallel task below which splitting is not worth a thread.
constexpr int64_t kPairwiseGrainOps = 1 << 15;

int64_t padded(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// (G, B, C, n_pad) copy of M (N, B, C) in the accumulation dtype, zero padded over j.
at::Tensor transpose_to_columns(const PairwiseL1Inputs& in) {
  const int64_t np = padded(in.set_size);
  at::Tensor cols = at::empty({in.num_sets, in.b, in.c, np}, in.m.options().dtype(in.acc_type));
  if (np > in.set_size) cols.narrow(3, in.set_size, np - in.set_size).zero_();
  cols.narrow(3, 0, in.set_size).copy_(in.m.view({in.num_sets, in.set_size, in.b, in.c}).permute({0, 2, 3, 1}));
  return cols;
}

// For the kLanes samples of block j0: d[jj] = ||M_i,b - M_(j0+jj),b||_1.
template <typename acc_t>
inline void block_distances(const acc_t* __restrict cols, int64_t np, int64_t c_dims, int64_t i, int64_t j0,
                            acc_t* __restrict d) {
  for (int64_t jj = 0; jj < kLanes; ++jj) d[jj] = acc_t(0);
  for (int64_t c = 0; c < c_dims; ++c) {
    const acc_t* __restrict col = cols + c * np + j0;
    const acc_t m = cols[c * np + i];
    for (int64_t jj = 0; jj < kLanes; ++jj) d[jj] += pl1_abs(col[jj] - m);
  }
}

// One population: sum_j c_b(i, j) weight[j] (Salimans et al. 2016, o(x_i)_b); weight is 1 for
// the set's samples, 0 for the padding and, with exclude_self, for j = i (a float mask keeps
// the lane loop free of integer compares; masking j = i to exactly 0 keeps small features
// exact, where subtracting 1 after the sum would cancel their digits).
template <typename acc_t>
BATCHGAN_CPU_MULTIVERSION acc_t row_feature(const acc_t* __restrict cols, const acc_t* __restrict weight, int64_t np,
                                            int64_t c_dims, int64_t i) {
  acc_t lane_sum[kLanes] = {};
  acc_t d[kLanes];
  for (int64_t j0 = 0; j0 < np; j0 += kLanes) {
    block_distances(cols, np, c_dims, i, j0, d);
    for (int64_t jj = 0; jj < kLanes; ++jj) lane_sum[jj] += pl1_exp_neg_cpu(d[jj]) * weight[j0 + jj];
  }
  acc_t s = 0;
  for (int64_t jj = 0; jj < kLanes; ++jj) s += lane_sum[jj];
  return s;
}

// Several populations: out[j] = c_b(i, j) weight[j] for all j of the padded row.
template <typename acc_t>
BATCHGAN_CPU_MULTIVERSION void row_terms(const acc_t* __restrict cols, const acc_t* __restrict weight, int64_t np,
                                         int64_t c_dims, int64_t i, acc_t* __restrict out) {
  acc_t d[kLanes];
  for (int64_t j0 = 0; j0 < np; j0 += kLanes) {
    block_distances(cols, np, c_dims, i, j0, d);
    for (int64_t jj = 0; jj < kLanes; ++jj) out[j0 + jj] = pl1_exp_neg_cpu(d[jj]) * weight[j0 + jj];
  }
}

// The lane loops above mask a term by multiplying it with a weight of 0, which is exact as
// long as the masked distances are finite: then the j = i term (distance 0) and the zero
// padding give finite terms times 0. A row i holding inf or NaN makes them NaN, and NaN * 0
// would leak into the sum, so such rows take the scalar loop below, which skips masked terms.
template <typename acc_t>
inline bool row_is_finite(const acc_t* __restrict cols, int64_t np, int64_t c_dims, int64_t i) {
  bool finite = true;
  for (int64_t c = 0; c < c_dims; ++c) finite &= std::isfinite(cols[c * np + i]);
  return finite;
}

// out[j] = c_b(i, j) for the samples j in [first, n) that enter row i's sum (all but j = i with
// exclude_self), 0 for the others and the padding, each distance computed only when it counts.
template <typename acc_t>
void row_terms_exact(const acc_t* __restrict cols, int64_t np, int64_t n, int64_t c_dims, int64_t i, int64_t first,
                     bool exclude_self, acc_t* __restrict out) {
  for (int64_t j = 0; j < np; ++j) {
    out[j] = acc_t(0);
    if (j < first || j >= n || (exclude_self && j == i)) continue;
    acc_t d = 0;
    for (int64_t c = 0; c < c_dims; ++c) d += pl1_abs(cols[c * np + j] - cols[c * np + i]);
    out[j] = pl1_exp_neg_cpu(d);
  }
}

template <typename acc_t>
BATCHGAN_CPU_MULTIVERSION acc_t sum_row_where(const acc_t* __restrict v, const int32_t* __restrict lab, int32_t p,
                                              int64_t n) {
  acc_t s = 0;
  // omp simd lets the compiler reassociate the sum into vector lanes (-fopenmp build).
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += lab[j] == p ? v[j] : acc_t(0);
  return s;
}

// Backward, one population: coef[j] = c_b(i, j) (hi + h_col[j]) over the padded row (h_col is
// zero padded; the padding's coefficients are never read).
template <typename acc_t>
BATCHGAN_CPU_MULTIVERSION void row_coefficients(const acc_t* __restrict cols, int64_t np, int64_t c_dims, int64_t i,
                                                acc_t hi, const acc_t* __restrict h_col, acc_t* __restrict coef) {
  acc_t d[kLanes];
  for (int64_t j0 = 0; j0 < np; j0 += kLanes) {
    block_distances(cols, np, c_dims, i, j0, d);
    for (int64_t jj = 0; jj < kLanes; ++jj) coef[j0 + jj] = pl1_exp_neg_cpu(d[jj]) * (hi + h_col[j0 + jj]);
  }
}

// grad[c] = -sum_{j < n} coef[j] sign(M_i,b,c - M_j,b,c) for every c.
template <typename acc_t>
BATCHGAN_CPU_MULTIVERSION void row_gradient(const acc_t* __restrict cols, const acc_t* __restrict coef, int64_t n,
                                            int64_t np, int64_t c_dims, int64_t i, acc_t* __restrict grad) {
  for (int64_t c = 0; c < c_dims; ++c) {
    const acc_t* __restrict col = cols + c * np;
    const acc_t m = col[i];
    acc_t s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; ++j) s += coef[j] * pl1_sign(m - col[j]);
    grad[c] = -s;
  }
}

// ---- symmetric path: c_b(i, j) = c_b(j, i), so each pair is computed once ----------------
// Used without split when there are at least kSymmetricMinSlabs (set, kernel) slabs: a task
// owns whole slabs, walks rows i in order and pairs j > i only, adding each term to row i and,
// through a per-task buffer of one slab (O(n C)), to row j. Row i's buffer entry is complete
// when i is reached, since only rows before it add to it.
constexpr int64_t kSymmetricMinSlabs = 8;

// First block of row i holds j = i + 1; lanes before it are masked.
inline int64_t first_block_after(int64_t i) { return (i + 1) / kLanes * kLanes; }

// Weights of the first block of row i: valid[j] for j > i, 0 for j <= i. Kept out of the main
// loops: a compare-and-select there would stop GCC from vectorising them (-ftrapping-math).
template <typename acc_t>
inline void first_block_weights(const acc_t* __restrict valid, int64_t first, int64_t i, acc_t* __restrict w) {
  for (int64_t jj = 0; jj < kLanes; ++jj) w[jj] = first + jj > i ? valid[first + jj] : acc_t(0);
}

// The symmetric kernels take the kernel dimension C as a template argument kC for the common
// sizes (the improved-gan / gist default C = 5, torchgan's 16, the small ones in between;
// kC = 0: C at run time): with the c loops unrolled, row i's values M_i,b,c and the backward's
// per-c lane sums stay in registers across the whole row.
template <int kC>
inline int64_t c_count(int64_t c_dims) {
  return kC > 0 ? kC : c_dims;
}

// d[jj] = sum_c |m[c] - M_(j0+jj),b,c| with row i's values m hoisted out of the j loop.
template <int kC, typename acc_t>
inline void block_distances_to(const acc_t* __restrict cols, int64_t np, int64_t c_dims, const acc_t* __restrict m,
                               int64_t j0, acc_t* __restrict d) {
  for (int64_t jj = 0; jj < kLanes; ++jj) d[jj] = acc_t(0);
  for (int64_t c = 0; c < c_count<kC>(c_dims); ++c) {
    const acc_t* __restrict col = cols + c * np + j0;
    for (int64_t jj = 0; jj < kLanes; ++jj) d[jj] += pl1_abs(col[jj] - m[c]);
  }
}

// Forward: returns sum_{j > i} c_b(i, j) and adds each term to acc[j]. `m` is row i's C values.
template <int kC, typename acc_t>
BATCHGAN_CPU_MULTIVERSION acc_t row_feature_upper(const acc_t* __restrict cols, const acc_t* __restrict valid,
                                                  int64_t np, int64_t c_dims, int64_t i, const acc_t* __restrict m_row,
                                                  acc_t* __restrict acc) {
  acc_t m_local[kC > 0 ? kC : 1];
  const acc_t* __restrict m = m_row;
  if constexpr (kC > 0) {
    for (int64_t c = 0; c < kC; ++c) m_local[c] = m_row[c];
    m = m_local;
  }
  acc_t lane_sum[kLanes] = {};
  acc_t d[kLanes], w[kLanes];
  const int64_t first = first_block_after(i);
  if (first >= np) return acc_t(0);
  first_block_weights(valid, first, i, w);
  block_distances_to<kC>(cols, np, c_dims, m, first, d);
  for (int64_t jj = 0; jj < kLanes; ++jj) {
    const acc_t e = pl1_exp_neg_cpu(d[jj]) * w[jj];
    lane_sum[jj] += e;
    acc[first + jj] += e;
  }
  for (int64_t j0 = first + kLanes; j0 < np; j0 += kLanes) {
    block_distances_to<kC>(cols, np, c_dims, m, j0, d);
    for (int64_t jj = 0; jj < kLanes; ++jj) {
      const acc_t e = pl1_exp_neg_cpu(d[jj]) * valid[j0 + jj];
      lane_sum[jj] += e;
      acc[j0 + jj] += e;
    }
  }
  acc_t s = 0;
  for (int64_t jj = 0; jj < kLanes; ++jj) s += lane_sum[jj];
  return s;
}

// Backward, one pass over the pairs (i, j > i) of row i: per block of kLanes samples the
// coefficient coef_j = c_b(i, j) (h_i + h_j) stays in registers while, for every c,
// t_j = coef_j sign(M_i,c - M_j,c) is added to row i's lane sums (with a minus sign) and to
// acc[c][j] (the pair's other side). On return grad_i[c] = acc[c][i] - sum_j t_j; acc[c][i]
// is complete by then, since only rows before i add to it. `lanes_scratch` is C * kLanes
// values, used when kC = 0.
template <int kC, typename acc_t>
BATCHGAN_CPU_MULTIVERSION void row_gradient_upper(const acc_t* __restrict cols, const acc_t* __restrict valid,
                                                  int64_t np, int64_t c_dims, int64_t i, const acc_t* __restrict m_row,
                                                  acc_t hi, const acc_t* __restrict h, acc_t* __restrict acc,
                                                  acc_t* __restrict lanes_scratch, acc_t* __restrict grad) {
  acc_t m_local[kC > 0 ? kC : 1];
  acc_t lanes_local[kC > 0 ? kC * kLanes : 1];
  const acc_t* __restrict m = m_row;
  acc_t* __restrict lanes = lanes_scratch;
  if constexpr (kC > 0) {
    for (int64_t c = 0; c < kC; ++c) m_local[c] = m_row[c];
    m = m_local;
    lanes = lanes_local;
  }
  const int64_t c_dims_n = c_count<kC>(c_dims);
  for (int64_t k = 0; k < c_dims_n * kLanes; ++k) lanes[k] = acc_t(0);
  const int64_t first = first_block_after(i);
  acc_t d[kLanes], w[kLanes], coef[kLanes];
  for (int64_t j0 = first; j0 < np; j0 += kLanes) {
    if (j0 == first) {
      first_block_weights(valid, first, i, w);
    } else {
      for (int64_t jj = 0; jj < kLanes; ++jj) w[jj] = valid[j0 + jj];
    }
    block_distances_to<kC>(cols, np, c_dims, m, j0, d);
    for (int64_t jj = 0; jj < kLanes; ++jj) coef[jj] = pl1_exp_neg_cpu(d[jj]) * (hi + h[j0 + jj]) * w[jj];
    for (int64_t c = 0; c < c_dims_n; ++c) {
      const acc_t* __restrict col = cols + c * np + j0;
      acc_t* __restrict acc_c = acc + c * np + j0;
      acc_t* __restrict lane_c = lanes + c * kLanes;
      for (int64_t jj = 0; jj < kLanes; ++jj) {
        const acc_t t = coef[jj] * pl1_sign(m[c] - col[jj]);
        lane_c[jj] += t;
        acc_c[jj] += t;
      }
    }
  }
  for (int64_t c = 0; c < c_dims_n; ++c) {
    acc_t s = 0;
    for (int64_t jj = 0; jj < kLanes; ++jj) s += lanes[c * kLanes + jj];
    grad[c] = acc[c * np + i] - s;
  }
}

inline bool use_symmetric(const PairwiseL1Inputs& in) {
  return in.populations == 1 && in.num_sets * in.b >= kSymmetricMinSlabs;
}

inline int64_t row_grain(const PairwiseL1Inputs& in) {
  return std::max<int64_t>(1, kPairwiseGrainOps / std::max<int64_t>(1, in.set_size * (in.c + 2)));
}

at::Tensor pairwise_l1_features_cpu(const at::Tensor& M, int64_t num_sets, bool exclude_self, bool mean,
                                    const std::optional<at::Tensor>& split, int64_t num_populations) {
  const PairwiseL1Inputs in = pairwise_l1_prepare(M, num_sets, exclude_self, mean, split, num_populations);
  at::Tensor out = at::empty(pairwise_l1_output_shape(in), M.options());
  if (out.numel() == 0) return out;
  const at::Tensor columns = transpose_to_columns(in);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, M.scalar_type(), "pairwise_l1_features_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t* cols_all = columns.const_data_ptr<acc_t>();
    const int32_t* labels = in.labels.const_data_ptr<int32_t>();
    const acc_t* scale = in.scale.const_data_ptr<acc_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const int64_t n = in.set_size, np = padded(n), B = in.b, C = in.c, P = in.populations;
    if (use_symmetric(in)) {
      dispatch_int</*kFallback=*/0, 1, 2, 3, 4, 5, 8, 16>(C, [&]<int kC>() {
        at::parallel_for(0, in.num_sets * B, 1, [&](int64_t begin, int64_t end) {
          std::vector<acc_t> acc(np), valid(np, acc_t(0)), m_row(C), terms(np);
          std::fill(valid.begin(), valid.begin() + n, acc_t(1));
          for (int64_t gb = begin; gb < end; ++gb) {
            const int64_t g = gb / B, b = gb % B;
            const acc_t* cols = cols_all + gb * C * np;
            std::fill(acc.begin(), acc.end(), acc_t(0));
            for (int64_t i = 0; i < n; ++i) {
              const int64_t row = g * n + i;
              // The pairs (j < i, i), complete now: read before this row's pass adds to acc.
              const acc_t lower = acc[i];
              acc_t upper = 0, self_term = 0;
              if (row_is_finite(cols, np, C, i)) {
                for (int64_t c = 0; c < C; ++c) m_row[c] = cols[c * np + i];
                upper = row_feature_upper<kC>(cols, valid.data(), np, C, i, m_row.data(), acc.data());
                if (!in.exclude_self) self_term = acc_t(1);  // c_b(i, i) = exp(0)
              } else {
                row_terms_exact(cols, np, n, C, i, /*first=*/i + 1, /*exclude_self=*/true, terms.data());
                for (int64_t j = i + 1; j < n; ++j) {
                  upper += terms[j];
                  acc[j] += terms[j];
                }
                // c_b(i, i) = exp(-|M_i - M_i|): NaN for an inf or NaN sample, as any pair with it.
                if (!in.exclude_self) {
                  acc_t d = 0;
                  for (int64_t c = 0; c < C; ++c) d += pl1_abs(cols[c * np + i] - cols[c * np + i]);
                  self_term = pl1_exp_neg_cpu(d);
                }
              }
              o[row * B + b] = static_cast<scalar_t>((lower + upper + self_term) * scale[row]);
            }
          }
        });
      });
      return;
    }
    at::parallel_for(0, in.num_sets * B * n, row_grain(in), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> terms(P > 1 ? np : 0), weight(np, acc_t(0));
      std::fill(weight.begin(), weight.begin() + n, acc_t(1));
      for (int64_t item = begin; item < end; ++item) {
        // i fastest: consecutive rows of a task reuse the (g, b) columns from cache.
        const int64_t i = item % n;
        const int64_t gb = item / n;
        const int64_t g = gb / B, b = gb % B;
        const int64_t row = g * n + i;
        const acc_t* cols = cols_all + gb * C * np;
        if (!row_is_finite(cols, np, C, i)) {
          terms.resize(np);
          row_terms_exact(cols, np, n, C, i, /*first=*/0, in.exclude_self, terms.data());
        } else if (P == 1) {
          if (in.exclude_self) weight[i] = acc_t(0);
          o[row * B + b] = static_cast<scalar_t>(row_feature(cols, weight.data(), np, C, i) * scale[row]);
          weight[i] = acc_t(1);
          continue;
        } else {
          if (in.exclude_self) weight[i] = acc_t(0);
          row_terms(cols, weight.data(), np, C, i, terms.data());
          weight[i] = acc_t(1);
        }
        for (int64_t p = 0; p < P; ++p) {
          const acc_t s = sum_row_where(terms.data(), labels + g * n, static_cast<int32_t>(p), n);
          o[(row * P + p) * B + b] = static_cast<scalar_t>(s * scale[row * P + p]);
        }
      }
    });
  });
  return out;
}

at::Tensor pairwise_l1_features_backward_cpu(const at::Tensor& grad, const at::Tensor& M, int64_t num_sets,
                                             bool exclude_self, bool mean, const std::optional<at::Tensor>& split,
                                             int64_t num_populations) {
  const PairwiseL1Inputs in = pairwise_l1_prepare(M, num_sets, exclude_self, mean, split, num_populations);
  const int64_t n = in.set_size, np = padded(n), B = in.b, C = in.c, P = in.populations;
  // h[i, p, b] = grad * scale, as (G, B, P, n_pad) so that h[., label(i), b] is contiguous over j.
  const at::Tensor h_rows = pairwise_l1_scaled_grad(in, grad);
  at::Tensor h = at::empty({in.num_sets, B, P, np}, h_rows.options());
  if (np > n) h.narrow(3, n, np - n).zero_();
  h.narrow(3, 0, n).copy_(h_rows.view({in.num_sets, n, P, B}).permute({0, 3, 2, 1}));
  at::Tensor grad_m = at::empty({in.n, B, C}, M.options());
  if (grad_m.numel() == 0) return grad_m;
  const at::Tensor columns = transpose_to_columns(in);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, M.scalar_type(), "pairwise_l1_features_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t* cols_all = columns.const_data_ptr<acc_t>();
    const acc_t* h_all = h.const_data_ptr<acc_t>();
    const int32_t* labels = in.labels.const_data_ptr<int32_t>();
    scalar_t* gm = grad_m.mutable_data_ptr<scalar_t>();
    if (use_symmetric(in)) {
      // One population: coef_ij = c_b(i, j) (h_i + h_j) is symmetric, each pair's term goes
      // to row i with a minus sign and to row j with a plus sign.
      dispatch_int</*kFallback=*/0, 1, 2, 3, 4, 5, 8, 16>(C, [&]<int kC>() {
        at::parallel_for(0, in.num_sets * B, 1, [&](int64_t begin, int64_t end) {
          std::vector<acc_t> acc(C * np), lanes(C * kLanes), valid(np, acc_t(0)), m_row(C), row_grad(C);
          std::fill(valid.begin(), valid.begin() + n, acc_t(1));
          for (int64_t gb = begin; gb < end; ++gb) {
            const int64_t g = gb / B, b = gb % B;
            const acc_t* cols = cols_all + gb * C * np;
            const acc_t* h_gb = h_all + gb * np;
            std::fill(acc.begin(), acc.end(), acc_t(0));
            for (int64_t i = 0; i < n; ++i) {
              for (int64_t c = 0; c < C; ++c) m_row[c] = cols[c * np + i];
              row_gradient_upper<kC>(cols, valid.data(), np, C, i, m_row.data(), h_gb[i], h_gb, acc.data(),
                                     lanes.data(), row_grad.data());
              scalar_t* out_row = gm + ((g * n + i) * B + b) * C;
              for (int64_t c = 0; c < C; ++c) out_row[c] = static_cast<scalar_t>(row_grad[c]);
            }
          }
        });
      });
      return;
    }
    at::parallel_for(0, in.num_sets * B * n, row_grain(in), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> coef(np), row_grad(C), weight(np, acc_t(0));
      std::fill(weight.begin(), weight.begin() + n, acc_t(1));
      for (int64_t item = begin; item < end; ++item) {
        const int64_t i = item % n;
        const int64_t gb = item / n;
        const int64_t g = gb / B;
        const int64_t row = g * n + i;
        const acc_t* cols = cols_all + gb * C * np;
        const acc_t* h_gb = h_all + gb * P * np;  // h[g*n + j, p, b] at h_gb[p * np + j]
        const int32_t* lab = labels + g * n;
        // coef_j = c_b(i, j) (h[i, label(j), b] + h[j, label(i), b]). The j = i term needs no
        // special case: its sign(0) is 0 whether or not exclude_self dropped it.
        const acc_t* h_col = h_gb + lab[i] * np;
        if (P == 1) {
          row_coefficients(cols, np, C, i, h_gb[i], h_col, coef.data());
        } else {
          row_terms(cols, weight.data(), np, C, i, coef.data());
          acc_t hi[kPairwiseMaxPopulations];
          for (int64_t p = 0; p < P; ++p) hi[p] = h_gb[p * np + i];
          for (int64_t j = 0; j < n; ++j) coef[j] *= hi[lab[j]] + h_col[j];
        }
        row_gradient(cols, coef.data(), n, np, C, i, row_grad.data());
        scalar_t* out_row = gm + (row * B + gb % B) * C;
        for (int64_t c = 0; c < C; ++c) out_row[c] = static_cast<scalar_t>(row_grad[c]);
      }
    });
  });
  return grad_m;
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CPU, m) {
  register_pairwise_l1_features<&pairwise_l1_features_cpu, &pairwise_l1_features_backward_cpu, c10::DeviceType::CPU>(
      m, Registration::kImpl);
}

}  // namespace batchgan
