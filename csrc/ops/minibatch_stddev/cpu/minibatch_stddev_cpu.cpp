// CPU kernels of `minibatch_stddev`: one task per (group r, channel block f), which reads the
// group's G samples over the block's channels once and writes their share of the output (the
// copied input channels and the appended stddev channel). Inner loops run over contiguous
// spatial positions and vectorise.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "ops/minibatch_stddev/minibatch_stddev.h"

namespace batchgan {
namespace {

constexpr int64_t kStddevGrainElems = 1 << 14;

// mean[p] and sum_sq[p] over the G members of group r for channel ch.
template <typename scalar_t, typename acc_t>
inline void group_moments(const scalar_t* __restrict x, const MinibatchStddevInputs& in, int64_t r, int64_t ch,
                          acc_t* __restrict mean, acc_t* __restrict sum_sq) {
  const int64_t P = in.positions;
  for (int64_t p = 0; p < P; ++p) mean[p] = acc_t(0);
  for (int64_t gi = 0; gi < in.group; ++gi) {
    const scalar_t* __restrict xk = x + ((gi * in.num_groups + r) * in.channels + ch) * P;
    for (int64_t p = 0; p < P; ++p) mean[p] += static_cast<acc_t>(xk[p]);
  }
  const acc_t inv_g = acc_t(1) / static_cast<acc_t>(in.group);
  for (int64_t p = 0; p < P; ++p) {
    mean[p] *= inv_g;
    sum_sq[p] = acc_t(0);
  }
  for (int64_t gi = 0; gi < in.group; ++gi) {
    const scalar_t* __restrict xk = x + ((gi * in.num_groups + r) * in.channels + ch) * P;
    for (int64_t p = 0; p < P; ++p) {
      const acc_t d = static_cast<acc_t>(xk[p]) - mean[p];
      sum_sq[p] += d * d;
    }
  }
}

// sum_p sqrt(sum_sq[p] / G + eps). omp simd lets the compiler reassociate the sum into vector
// lanes (-fopenmp build); a pragma cannot sit inside the AT_DISPATCH macro, hence a function.
template <typename acc_t>
inline acc_t sum_stddev(const acc_t* __restrict sum_sq, int64_t P, int64_t G) {
  acc_t total = 0;
#pragma omp simd reduction(+ : total)
  for (int64_t p = 0; p < P; ++p) total += mbstd_stddev(sum_sq[p], G);
  return total;
}

int64_t item_grain(const MinibatchStddevInputs& in) {
  return std::max<int64_t>(1, kStddevGrainElems / std::max<int64_t>(1, in.group * in.block_channels * in.positions));
}

at::Tensor minibatch_stddev_cpu(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  const MinibatchStddevInputs in = minibatch_stddev_prepare(x, group_size, num_channels);
  at::Tensor out = at::empty(in.out_shape, x.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "minibatch_stddev_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = in.x.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const int64_t P = in.positions, C = in.channels, CO = in.channels + in.blocks, n = in.num_groups;
    at::parallel_for(0, n * in.blocks, item_grain(in), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> mean(P), sum_sq(P);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t r = item / in.blocks, f = item % in.blocks;
        acc_t total = 0;
        for (int64_t ch = f * in.block_channels; ch < (f + 1) * in.block_channels; ++ch) {
          group_moments(xp, in, r, ch, mean.data(), sum_sq.data());
          total += sum_stddev(sum_sq.data(), P, in.group);
          for (int64_t gi = 0; gi < in.group; ++gi) {
            const int64_t k = gi * n + r;
            std::copy(xp + (k * C + ch) * P, xp + (k * C + ch + 1) * P, op + (k * CO + ch) * P);
          }
        }
        const scalar_t s = static_cast<scalar_t>(total / static_cast<acc_t>(in.block_channels * P));
        for (int64_t gi = 0; gi < in.group; ++gi) {
          scalar_t* __restrict dst = op + ((gi * n + r) * CO + C + f) * P;
          for (int64_t p = 0; p < P; ++p) dst[p] = s;
        }
      }
    });
  });
  return out;
}

at::Tensor minibatch_stddev_backward_cpu(const at::Tensor& grad, const at::Tensor& x, int64_t group_size,
                                         int64_t num_channels) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  const MinibatchStddevInputs in = minibatch_stddev_prepare(x, group_size, num_channels);
  const at::Tensor g = minibatch_stddev_check_grad(in, grad);
  at::Tensor grad_x = at::empty({in.batch, in.channels, in.positions}, x.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "minibatch_stddev_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = in.x.const_data_ptr<scalar_t>();
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    scalar_t* gx = grad_x.mutable_data_ptr<scalar_t>();
    const int64_t P = in.positions, C = in.channels, CO = in.channels + in.blocks, n = in.num_groups;
    at::parallel_for(0, n * in.blocks, item_grain(in), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> mean(P), sum_sq(P);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t r = item / in.blocks, f = item % in.blocks;
        // Every sample of the group and every position received s[r, f].
        acc_t upstream = 0;
        for (int64_t gi = 0; gi < in.group; ++gi) {
          const scalar_t* __restrict src = gp + ((gi * n + r) * CO + C + f) * P;
          for (int64_t p = 0; p < P; ++p) upstream += static_cast<acc_t>(src[p]);
        }
        const acc_t a = upstream / static_cast<acc_t>(in.block_channels * P);
        for (int64_t ch = f * in.block_channels; ch < (f + 1) * in.block_channels; ++ch) {
          group_moments(xp, in, r, ch, mean.data(), sum_sq.data());
          for (int64_t gi = 0; gi < in.group; ++gi) {
            const int64_t k = gi * n + r;
            const scalar_t* __restrict xk = xp + (k * C + ch) * P;
            const scalar_t* __restrict gk = gp + (k * CO + ch) * P;
            scalar_t* __restrict dst = gx + (k * C + ch) * P;
            for (int64_t p = 0; p < P; ++p) {
              const acc_t sd = mbstd_stddev(sum_sq[p], in.group);
              dst[p] = static_cast<scalar_t>(static_cast<acc_t>(gk[p]) +
                                             mbstd_grad(a, static_cast<acc_t>(xk[p]) - mean[p], sd, in.group));
            }
          }
        }
      }
    });
  });
  return grad_x.view(x.sizes());
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CPU, m) {
  m.impl("minibatch_stddev", &minibatch_stddev_cpu);
  m.impl("minibatch_stddev_backward", &minibatch_stddev_backward_cpu);
}

}  // namespace batchgan
