// CPU kernels of `pairwise_l1_features`: parallel over rows (set, kernel b, sample i), each row a
// pass over the other samples j of its set. M is copied once to a (G, B, C, n) layout in the
// accumulation dtype so that, for a row, every inner loop runs over j on contiguous memory and
// vectorises (|.|, sign and the polynomial exp of pairwise_l1_math.h are all branch-free).
// Per thread the only scratch is one vector of n distances: O(N) memory besides the O(N B C) copy.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "ops/pairwise_l1/pairwise_l1.h"

namespace batchgan {
namespace {

// The inner loops over j are compiled twice, for x86-64-v3 (AVX2 + FMA: 8 floats a vector)
// and for the baseline (SSE2: 4), and picked at load time by an ifunc; the build itself
// targets the baseline. Each call covers a whole row (n samples), so the indirect call is
// amortised.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BATCHGAN_ROW_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default"))) __attribute__((noinline))
#else
#define BATCHGAN_ROW_KERNEL inline
#endif

// Scalar operations per parallel task below which splitting is not worth a thread.
constexpr int64_t kPairwiseGrainOps = 1 << 15;

// (G, B, C, n) copy of M (N, B, C) in acc_t: column j of kernel b, dim c of set g is contiguous.
at::Tensor transpose_to_columns(const PairwiseL1Inputs& in) {
  return in.m.view({in.groups, in.set_size, in.b, in.c}).permute({0, 2, 3, 1}).to(in.acc_type).contiguous();
}

// dist[j] = ||M_i,b - M_j,b||_1 for the n samples j of the set, from the columns of (g, b).
template <typename acc_t>
BATCHGAN_ROW_KERNEL void row_distances(const acc_t* __restrict cols, int64_t n, int64_t c_dims, int64_t i,
                          acc_t* __restrict dist) {
  for (int64_t j = 0; j < n; ++j) dist[j] = acc_t(0);
  for (int64_t c = 0; c < c_dims; ++c) {
    const acc_t* __restrict col = cols + c * n;
    const acc_t m = col[i];
    for (int64_t j = 0; j < n; ++j) dist[j] += pl1_abs(col[j] - m);
  }
}

// The reductions over j. omp simd lets the compiler reassociate each sum into vector lanes
// (-fopenmp build); a pragma cannot sit inside the AT_DISPATCH macro, hence functions.
template <typename acc_t>
BATCHGAN_ROW_KERNEL acc_t sum_row(const acc_t* __restrict v, int64_t n) {
  acc_t s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += v[j];
  return s;
}

template <typename acc_t>
BATCHGAN_ROW_KERNEL acc_t sum_row_where(const acc_t* __restrict v, const int32_t* __restrict lab, int32_t p, int64_t n) {
  acc_t s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += lab[j] == p ? v[j] : acc_t(0);
  return s;
}

// sum_j coef[j] sign(m - col[j]).
template <typename acc_t>
BATCHGAN_ROW_KERNEL acc_t signed_sum(const acc_t* __restrict coef, const acc_t* __restrict col, acc_t m, int64_t n) {
  acc_t s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += coef[j] * pl1_sign(m - col[j]);
  return s;
}

template <typename acc_t>
BATCHGAN_ROW_KERNEL void exp_neg_inplace(acc_t* __restrict d, int64_t n) {
  for (int64_t j = 0; j < n; ++j) d[j] = pl1_exp_neg_cpu(d[j]);
}

// coef[j] = exp(-dist[j]) (hi + h_col[j]), in place over dist (one population).
template <typename acc_t>
BATCHGAN_ROW_KERNEL void exp_neg_times(acc_t* __restrict d, acc_t hi, const acc_t* __restrict h_col, int64_t n) {
  for (int64_t j = 0; j < n; ++j) d[j] = pl1_exp_neg_cpu(d[j]) * (hi + h_col[j]);
}

template <typename acc_t>
inline int64_t row_grain(const PairwiseL1Inputs& in) {
  return std::max<int64_t>(1, kPairwiseGrainOps / std::max<int64_t>(1, in.set_size * (in.c + 2)));
}

at::Tensor pairwise_l1_features_cpu(const at::Tensor& M, int64_t groups, bool exclude_self, bool mean,
                                    const std::optional<at::Tensor>& split, int64_t num_populations) {
  check_device_type(M, "M", c10::DeviceType::CPU);
  const PairwiseL1Inputs in = pairwise_l1_prepare(M, groups, exclude_self, mean, split, num_populations);
  at::Tensor out = at::empty(pairwise_l1_output_shape(in), M.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, M.scalar_type(), "pairwise_l1_features_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor columns = transpose_to_columns(in);
    const acc_t* cols_all = columns.const_data_ptr<acc_t>();
    const int32_t* labels = in.labels.const_data_ptr<int32_t>();
    const acc_t* scale = in.scale.const_data_ptr<acc_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const int64_t n = in.set_size, B = in.b, C = in.c, P = in.populations;
    at::parallel_for(0, in.groups * B * n, row_grain<acc_t>(in), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> dist_buf(n);
      acc_t* __restrict dist = dist_buf.data();
      for (int64_t item = begin; item < end; ++item) {
        // i fastest: consecutive rows of a task reuse the (g, b) columns from cache.
        const int64_t i = item % n;
        const int64_t gb = item / n;
        const int64_t g = gb / B, b = gb % B;
        const int64_t row = g * n + i;
        row_distances(cols_all + gb * C * n, n, C, i, dist);
        // exclude_self: an infinite distance makes c_b(i, i) exactly 0 (subtracting 1 after
        // the sum would cancel digits of small features).
        if (in.exclude_self) dist[i] = std::numeric_limits<acc_t>::infinity();
        exp_neg_inplace(dist, n);  // now c_b(i, j)
        if (P == 1) {
          o[row * B + b] = static_cast<scalar_t>(sum_row(dist, n) * scale[row]);
        } else {
          const int32_t* lab = labels + g * n;
          for (int64_t p = 0; p < P; ++p) {
            const acc_t s = sum_row_where(dist, lab, static_cast<int32_t>(p), n);
            o[(row * P + p) * B + b] = static_cast<scalar_t>(s * scale[row * P + p]);
          }
        }
      }
    });
  });
  return out;
}

at::Tensor pairwise_l1_features_backward_cpu(const at::Tensor& grad, const at::Tensor& M, int64_t groups,
                                             bool exclude_self, bool mean, const std::optional<at::Tensor>& split,
                                             int64_t num_populations) {
  check_device_type(M, "M", c10::DeviceType::CPU);
  const PairwiseL1Inputs in = pairwise_l1_prepare(M, groups, exclude_self, mean, split, num_populations);
  const int64_t n = in.set_size, B = in.b, C = in.c, P = in.populations;
  // h[i, p, b] = grad * scale, as (G, B, P, n) so that h[., label(i), b] is contiguous over j.
  const at::Tensor h = pairwise_l1_scaled_grad(in, grad).view({in.groups, n, P, B}).permute({0, 3, 2, 1}).contiguous();
  at::Tensor grad_m = at::empty({in.n, B, C}, M.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, M.scalar_type(), "pairwise_l1_features_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor columns = transpose_to_columns(in);
    const acc_t* cols_all = columns.const_data_ptr<acc_t>();
    const acc_t* h_all = h.const_data_ptr<acc_t>();
    const int32_t* labels = in.labels.const_data_ptr<int32_t>();
    scalar_t* gm = grad_m.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, in.groups * B * n, row_grain<acc_t>(in), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> coef_buf(n);
      acc_t* __restrict coef = coef_buf.data();
      for (int64_t item = begin; item < end; ++item) {
        const int64_t i = item % n;
        const int64_t gb = item / n;
        const int64_t g = gb / B;
        const int64_t row = g * n + i;
        const acc_t* __restrict cols = cols_all + gb * C * n;
        const acc_t* __restrict h_gb = h_all + gb * P * n;  // h[g*n + j, p, b] at h_gb[p * n + j]
        const int32_t* __restrict lab = labels + g * n;
        row_distances(cols, n, C, i, coef);
        // coef_j = c_b(i, j) (h[i, label(j), b] + h[j, label(i), b]). The j = i term needs no
        // special case: its sign(0) is 0 whether or not exclude_self dropped it.
        const acc_t* __restrict h_col = h_gb + lab[i] * n;
        if (P == 1) {
          const acc_t hi = h_gb[i];
          exp_neg_times(coef, hi, h_col, n);
        } else {
          acc_t hi[kPairwiseMaxPopulations];
          for (int64_t p = 0; p < P; ++p) hi[p] = h_gb[p * n + i];
          for (int64_t j = 0; j < n; ++j) {
            acc_t sel = hi[0];
            for (int64_t p = 1; p < P; ++p) sel = lab[j] == p ? hi[p] : sel;
            coef[j] = pl1_exp_neg_cpu(coef[j]) * (sel + h_col[j]);
          }
        }
        scalar_t* __restrict out_row = gm + (row * B + gb % B) * C;
        for (int64_t c = 0; c < C; ++c) {
          const acc_t* __restrict col = cols + c * n;
          const acc_t m = col[i];
          out_row[c] = static_cast<scalar_t>(-signed_sum(coef, col, m, n));
        }
      }
    });
  });
  return grad_m;
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CPU, m) {
  m.impl("pairwise_l1_features", &pairwise_l1_features_cpu);
  m.impl("pairwise_l1_features_backward", &pairwise_l1_features_backward_cpu);
}

}  // namespace batchgan
