// CPU kernels of the equivariant layers: the four fused passes of equivariant.h, parallel with
// at::parallel_for, inner loops over contiguous runs written so that the compiler vectorises
// them (activation fixed at compile time, channel constant or contiguous along the run).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/cpu_convert.h"
#include "common/cpu_multiversion.h"
#include "common/dispatch_int.h"
#include "ops/equivariant/equivariant.h"
#include "ops/equivariant/equivariant_register.h"

namespace batchgan {
namespace {

// Elements a task should touch at least, so that scheduling a thread pays off.
constexpr int64_t kGrainElements = 32768;
// Width of the chunks of the small-K linear backward (its per-chunk dz stays in L1).
constexpr int64_t kChunk = 1024;
// Width range of the chunks of the per-set reductions (set_mean, the backward epilogue): each
// chunk is read as one contiguous run per sample, so wide chunks stream (a 4 KiB run per sample
// restarts the hardware prefetcher at every page: measured 1.7x slower at 64x128x16x16), while
// the float32 accumulator of the widest (64 KiB) stays in L2.
constexpr int64_t kMinReduceChunk = 1024;
constexpr int64_t kMaxReduceChunk = 16384;
// Samples the per-set reductions (set_mean, the backward epilogue) add per pass over a chunk.
constexpr int kRowsPerPass = 4;

int64_t grain_for(int64_t elements_per_item) {
  return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, elements_per_item));
}

template <typename F>
void dispatch_activation(Activation act, const F& f) {
  switch (act) {
    case Activation::kIdentity: f.template operator()<Activation::kIdentity>(); break;
    case Activation::kRelu: f.template operator()<Activation::kRelu>(); break;
    case Activation::kLeakyRelu: f.template operator()<Activation::kLeakyRelu>(); break;
  }
}

// Calls f(g, k0, len, acc) for every chunk [k0, k0 + len) of the inner range of every set g,
// with acc a scratch accumulator of len values. The chunks are as wide as possible while every
// thread still gets a share of the (set, chunk) tasks.
template <typename acc_t, typename F>
void for_set_chunks(const SetLayout& l, const F& f) {
  const int64_t threads = at::get_num_threads();
  const int64_t chunks_per_set = std::max<int64_t>(1, (threads + l.num_sets - 1) / l.num_sets);
  const int64_t chunk =
      std::clamp<int64_t>((l.inner + chunks_per_set - 1) / chunks_per_set, kMinReduceChunk, kMaxReduceChunk);
  const int64_t chunks = (l.inner + chunk - 1) / chunk;
  const int64_t per_item = std::min(l.inner, chunk) * l.set_size;
  at::parallel_for(0, l.num_sets * chunks, grain_for(per_item), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(std::min(l.inner, chunk));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t g = item / chunks;
      const int64_t k0 = (item - g * chunks) * chunk;
      f(g, k0, std::min(chunk, l.inner - k0), acc.data());
    }
  });
}

// The inner loops, as functions of restrict pointers and by-value scalars, multiversioned for
// AVX-512 / AVX2 / the baseline (common/cpu_multiversion.h): inside the kernels'
// lambdas the slope and sizes are captured by reference, which the compiler must assume the
// float stores may alias, and then it neither hoists nor vectorises. `omp simd` (the build
// uses -fopenmp) makes the activation's select a blend: left to itself GCC compiles it as a
// branch (it will not speculate the multiply under -ftrapping-math), which random signs
// mispredict half of the time (measured 7x slower than the vector loop).
template <Activation A, typename scalar_t, typename acc_t>
BATCHGAN_CPU_MULTIVERSION void forward_run(scalar_t* __restrict__ y, const scalar_t* __restrict__ gm,
                                           const acc_t* __restrict__ bias, int64_t bias_step, int64_t len,
                                           acc_t slope) {
  if (bias_step == 0) {
    const acc_t b = bias[0];
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) {
      const acc_t z = static_cast<acc_t>(y[j]) + b + static_cast<acc_t>(gm[j]);
      y[j] = from_acc<scalar_t>(activation_forward<acc_t>(A, z, slope));
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) {
      const acc_t z = static_cast<acc_t>(y[j]) + bias[j] + static_cast<acc_t>(gm[j]);
      y[j] = from_acc<scalar_t>(activation_forward<acc_t>(A, z, slope));
    }
  }
}

// dz = act'(y) dy for kRows samples (rows `stride` apart) over the same run of len values, their
// sum added to acc in row order. acc (up to 64 KiB) lives in L2: reading and writing it once per
// kRows rows instead of once per row is what brings this pass near leaky_relu_backward's time.
template <Activation A, int kRows, typename scalar_t, typename acc_t>
BATCHGAN_CPU_MULTIVERSION void backward_rows(const scalar_t* __restrict__ dy, const scalar_t* __restrict__ y,
                                             scalar_t* __restrict__ dz, acc_t* __restrict__ acc, int64_t stride,
                                             int64_t len, acc_t slope) {
#pragma omp simd
  for (int64_t k = 0; k < len; ++k) {
    acc_t sum = acc[k];
    for (int r = 0; r < kRows; ++r) {
      const acc_t d = activation_backward<acc_t>(A, static_cast<acc_t>(dy[r * stride + k]),
                                                 static_cast<acc_t>(y[r * stride + k]), slope);
      dz[r * stride + k] = from_acc<scalar_t>(d);
      sum += d;
    }
    acc[k] = sum;
  }
}

// acc += the kRows rows of x (`stride` apart), in row order; one pass over acc per kRows rows, as
// backward_rows.
template <int kRows, typename scalar_t, typename acc_t>
BATCHGAN_CPU_MULTIVERSION void accumulate_rows(const scalar_t* __restrict__ x, acc_t* __restrict__ acc, int64_t stride,
                                               int64_t len) {
#pragma omp simd
  for (int64_t k = 0; k < len; ++k) {
    acc_t sum = acc[k];
    for (int r = 0; r < kRows; ++r) sum += static_cast<acc_t>(x[r * stride + k]);
    acc[k] = sum;
  }
}

template <typename scalar_t, typename acc_t>
BATCHGAN_CPU_MULTIVERSION void store_run(const acc_t* __restrict__ acc, scalar_t* __restrict__ out, int64_t len,
                                         acc_t scale) {
  for (int64_t k = 0; k < len; ++k) out[k] = from_acc<scalar_t>(acc[k] * scale);
}

template <typename scalar_t, typename acc_t>
BATCHGAN_CPU_MULTIVERSION void broadcast_run(scalar_t* __restrict__ dst, const scalar_t* __restrict__ src, int64_t len,
                                             acc_t scale, bool accumulate) {
  if (accumulate) {
    for (int64_t k = 0; k < len; ++k)
      dst[k] = from_acc<scalar_t>(static_cast<acc_t>(dst[k]) + static_cast<acc_t>(src[k]) * scale);
  } else {
    for (int64_t k = 0; k < len; ++k) dst[k] = from_acc<scalar_t>(static_cast<acc_t>(src[k]) * scale);
  }
}

// ---- linear layers with few input features (kSmallLinearFeatures, equivariant.h) ----------
// The product x_n . Lambda_o is kK multiply-adds per output, done inside the fused passes
// instead of by a GEMM call whose output is written and read back. Lambda arrives transposed
// (kK, O) so that the loops run over contiguous output features.

// y[o] = act(c[o] + sum_k xv[k] wt[k][o]) for one sample; c = bias + the sample's Gamma term.
template <Activation A, int kK, typename scalar_t, typename acc_t>
BATCHGAN_CPU_MULTIVERSION void small_forward_row(scalar_t* __restrict__ y, const acc_t* __restrict__ c,
                                                 const acc_t* __restrict__ wt, const acc_t* __restrict__ xv,
                                                 int64_t outs, acc_t slope) {
#pragma omp simd
  for (int64_t o = 0; o < outs; ++o) {
    acc_t z = c[o];
    for (int k = 0; k < kK; ++k) z += xv[k] * wt[k * outs + o];
    y[o] = from_acc<scalar_t>(activation_forward<acc_t>(A, z, slope));
  }
}

// For one sample and the output features [o0, o0 + len): dz = act'(y) dy, added to the set's
// sums dzs, to the weight gradient gwt[k][o] += dz x_k, and dotted with Lambda for the
// sample's input gradient gx[k] (returned through gx).
template <Activation A, int kK, typename scalar_t, typename acc_t>
BATCHGAN_CPU_MULTIVERSION void small_backward_row(const scalar_t* __restrict__ dy, const scalar_t* __restrict__ y,
                                                  const acc_t* __restrict__ wt, const acc_t* __restrict__ xv,
                                                  acc_t* __restrict__ dzs, acc_t* __restrict__ gwt,
                                                  acc_t* __restrict__ gx, int64_t outs, int64_t len, acc_t slope) {
  acc_t dz[kChunk];
#pragma omp simd
  for (int64_t o = 0; o < len; ++o) {
    dz[o] = activation_backward<acc_t>(A, static_cast<acc_t>(dy[o]), static_cast<acc_t>(y[o]), slope);
    dzs[o] += dz[o];
  }
  for (int k = 0; k < kK; ++k) {
    acc_t dot = 0;
    const acc_t xk = xv[k];
    acc_t* __restrict__ gw_k = gwt + k * outs;
    const acc_t* __restrict__ w_k = wt + k * outs;
#pragma omp simd reduction(+ : dot)
    for (int64_t o = 0; o < len; ++o) {
      gw_k[o] += dz[o] * xk;
      dot += dz[o] * w_k[o];
    }
    gx[k] += dot;
  }
}

struct CpuKernels {
  static constexpr bool kFusedSmallLinear = true;

  // y = act(x Lambda^T + c[set]) for K <= kSmallLinearFeatures input features, one pass over y;
  // c (G, O) = bias + Gamma term in the accumulation dtype.
  static void small_linear_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& c, at::Tensor& y,
                                   const SetLayout& l, Activation act, double slope) {
    const int64_t features = x.size(1), outs = y.size(1);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "equivariant_small_linear_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const at::Tensor wt = weight.t().to(c.scalar_type()).contiguous();
      const acc_t* wp = wt.const_data_ptr<acc_t>();
      const acc_t* cp = c.const_data_ptr<acc_t>();
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      scalar_t* yp = y.mutable_data_ptr<scalar_t>();
      const acc_t sl = static_cast<acc_t>(slope);
      dispatch_activation(act, [&]<Activation A>() {
        dispatch_int</*kFallback=*/4, 1, 2, 3>(features, [&]<int kK>() {
          at::parallel_for(0, l.batch, grain_for(outs), [&](int64_t begin, int64_t end) {
            acc_t xv[kK];
            for (int64_t n = begin; n < end; ++n) {
              for (int k = 0; k < kK; ++k) xv[k] = static_cast<acc_t>(xp[n * kK + k]);
              small_forward_row<A, kK>(yp + n * outs, cp + (n / l.set_size) * outs, wp, xv, outs, sl);
            }
          });
        });
      });
    });
  }

  // One pass over (dy, y) for K <= kSmallLinearFeatures: the per-set sums dzs (G, O), the
  // input gradient x_grad = dz Lambda (N, K) and the weight gradient w_grad = dz^T x (O, K),
  // all accumulated in float32 or better. Tasks own chunks of output features; each thread
  // accumulates its own (N, K) share of x_grad, summed at the end.
  static void small_linear_backward(const at::Tensor& grad, const at::Tensor& y, const at::Tensor& x,
                                    const at::Tensor& weight, at::Tensor& dzs, at::Tensor& x_grad, at::Tensor& w_grad,
                                    const SetLayout& l, Activation act, double slope) {
    const int64_t features = x.size(1), outs = y.size(1), batch = l.batch;
    const int64_t threads = at::get_num_threads();
    // Chunks narrow enough that every thread gets one when there are few output features.
    const int64_t chunk = std::clamp<int64_t>((outs + threads - 1) / threads, 16, kChunk);
    const int64_t chunks = (outs + chunk - 1) / chunk;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "equivariant_small_linear_bwd_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const at::ScalarType acc_type = at::toOpMathType(x.scalar_type());
      const at::Tensor wt = weight.t().to(acc_type).contiguous();
      const at::Tensor xa = x.to(acc_type).contiguous();
      at::Tensor dzs_acc = at::zeros({l.num_sets, outs}, x.options().dtype(acc_type));
      at::Tensor gwt = at::zeros({features, outs}, x.options().dtype(acc_type));
      at::Tensor gx_parts = at::zeros({threads, batch, features}, x.options().dtype(acc_type));
      const acc_t* wp = wt.const_data_ptr<acc_t>();
      const acc_t* xp = xa.const_data_ptr<acc_t>();
      const scalar_t* dyp = grad.const_data_ptr<scalar_t>();
      const scalar_t* yp = y.const_data_ptr<scalar_t>();
      acc_t* dzsp = dzs_acc.mutable_data_ptr<acc_t>();
      acc_t* gwp = gwt.mutable_data_ptr<acc_t>();
      acc_t* gxp = gx_parts.mutable_data_ptr<acc_t>();
      const acc_t sl = static_cast<acc_t>(slope);
      dispatch_activation(act, [&]<Activation A>() {
        dispatch_int</*kFallback=*/4, 1, 2, 3>(features, [&]<int kK>() {
          at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
            acc_t* gx_thread = gxp + at::get_thread_num() * batch * kK;
            for (int64_t item = begin; item < end; ++item) {
              const int64_t o0 = item * chunk, len = std::min(chunk, outs - o0);
              for (int64_t n = 0; n < batch; ++n) {
                small_backward_row<A, kK>(dyp + n * outs + o0, yp + n * outs + o0, wp + o0, xp + n * kK,
                                          dzsp + (n / l.set_size) * outs + o0, gwp + o0, gx_thread + n * kK, outs, len,
                                          sl);
              }
            }
          });
        });
      });
      dzs.copy_(dzs_acc);
      x_grad.copy_(gx_parts.sum(0));
      w_grad.copy_(gwt.t());
    });
  }

  // rho(x) of eq. 11 for each set: float32+ accumulator per chunk, samples of the set in order.
  static void set_mean(const at::Tensor& x, at::Tensor& out, const SetLayout& l) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "set_mean_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* src = x.const_data_ptr<scalar_t>();
      scalar_t* dst = out.mutable_data_ptr<scalar_t>();
      const acc_t inv = acc_t(1) / static_cast<acc_t>(l.set_size);
      for_set_chunks<acc_t>(l, [&](int64_t g, int64_t k0, int64_t len, acc_t* acc) {
        std::fill(acc, acc + len, acc_t(0));
        int64_t s = 0;
        for (; s + kRowsPerPass <= l.set_size; s += kRowsPerPass) {
          accumulate_rows<kRowsPerPass>(src + (g * l.set_size + s) * l.inner + k0, acc, l.inner, len);
        }
        for (; s < l.set_size; ++s) accumulate_rows<1>(src + (g * l.set_size + s) * l.inner + k0, acc, l.inner, len);
        store_run(acc, dst + g * l.inner + k0, len, inv);
      });
    });
  }

  // y = act(y + bias[c] + gm[set]), eq. 12, in place. Each sample is cut into runs along which
  // the channel is constant (NCHW: a plane of H*W) or runs over all channels (channels_last,
  // linear), so the inner loop has no index arithmetic.
  static void epilogue_forward(at::Tensor& y, const at::Tensor& gm, const at::Tensor& bias, const SetLayout& l,
                               Activation act, double slope) {
    const bool planes = l.chan_stride > 1;
    const int64_t run = planes ? l.chan_stride : l.channels;
    const int64_t runs_per_sample = l.inner / run;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "equivariant_epilogue_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      scalar_t* yp = y.mutable_data_ptr<scalar_t>();
      const scalar_t* gp = gm.const_data_ptr<scalar_t>();
      const acc_t* bp = bias.const_data_ptr<acc_t>();
      const acc_t sl = static_cast<acc_t>(slope);
      dispatch_activation(act, [&]<Activation A>() {
        at::parallel_for(0, l.batch * runs_per_sample, grain_for(run), [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) {
            const int64_t n = r / runs_per_sample;
            const int64_t within = r - n * runs_per_sample;
            const scalar_t* gr = gp + (n / l.set_size) * l.inner + within * run;
            if (planes) {
              forward_run<A>(yp + r * run, gr, bp + within % l.channels, 0, run, sl);
            } else {
              forward_run<A>(yp + r * run, gr, bp, 1, run, sl);
            }
          }
        });
      });
    });
  }

  // dz = act'(y) dy and, in the same pass, dzs[g] = sum of dz over set g (the gradient of the
  // broadcast Gamma branch).
  static void epilogue_backward(const at::Tensor& grad, const at::Tensor& out, at::Tensor& dz, at::Tensor& dzs,
                                const SetLayout& l, Activation act, double slope) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "equivariant_epilogue_bwd_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* dyp = grad.const_data_ptr<scalar_t>();
      const scalar_t* yp = out.const_data_ptr<scalar_t>();
      scalar_t* dzp = dz.mutable_data_ptr<scalar_t>();
      scalar_t* dsp = dzs.mutable_data_ptr<scalar_t>();
      const acc_t sl = static_cast<acc_t>(slope);
      dispatch_activation(act, [&]<Activation A>() {
        for_set_chunks<acc_t>(l, [&](int64_t g, int64_t k0, int64_t len, acc_t* acc) {
          std::fill(acc, acc + len, acc_t(0));
          int64_t s = 0;
          for (; s + kRowsPerPass <= l.set_size; s += kRowsPerPass) {
            const int64_t off = (g * l.set_size + s) * l.inner + k0;
            backward_rows<A, kRowsPerPass>(dyp + off, yp + off, dzp + off, acc, l.inner, len, sl);
          }
          for (; s < l.set_size; ++s) {
            const int64_t off = (g * l.set_size + s) * l.inner + k0;
            backward_rows<A, 1>(dyp + off, yp + off, dzp + off, acc, l.inner, len, sl);
          }
          store_run(acc, dsp + g * l.inner + k0, len, acc_t(1));
        });
      });
    });
  }

  // dst[n] = (accumulate ? dst[n] : 0) + src[set(n)] / S: d rho(x) / d x_b = 1/S (eq. 11).
  static void broadcast_add(at::Tensor& dst, const at::Tensor& src, const SetLayout& l, bool accumulate) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dst.scalar_type(), "set_broadcast_add_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      scalar_t* dp = dst.mutable_data_ptr<scalar_t>();
      const scalar_t* sp = src.const_data_ptr<scalar_t>();
      const acc_t inv = acc_t(1) / static_cast<acc_t>(l.set_size);
      const int64_t chunks = (l.inner + kChunk - 1) / kChunk;
      at::parallel_for(0, l.batch * chunks, grain_for(std::min(l.inner, kChunk)), [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
          const int64_t n = item / chunks;
          const int64_t k0 = (item - n * chunks) * kChunk;
          const int64_t len = std::min(kChunk, l.inner - k0);
          broadcast_run(dp + n * l.inner + k0, sp + (n / l.set_size) * l.inner + k0, len, inv, accumulate);
        }
      });
    });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CPU, m) { register_equivariant<CpuKernels, c10::DeviceType::CPU>(m, Registration::kImpl); }

}  // namespace batchgan
