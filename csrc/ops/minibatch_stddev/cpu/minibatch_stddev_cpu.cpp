// CPU kernels of `minibatch_stddev`: parallel over (group r, channel block f, chunk of the
// block); each task reads the chunk of the group's G samples and writes the copied channels
// (forward) or the input gradient (backward). The per-(r, f) stddev means are reduced from
// per-chunk partial sums in a second, small pass. The chunk loops are multiversioned
// (common/cpu_multiversion.h).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/cpu_convert.h"
#include "common/cpu_multiversion.h"
#include "ops/minibatch_stddev/minibatch_stddev.h"
#include "ops/minibatch_stddev/minibatch_stddev_register.h"

namespace batchgan {
namespace {

// Within a sample, the c channels of block f times the P positions are one contiguous run of
// L = c * P elements, so the kernels walk each group's G runs in chunks of kChunk elements
// (the chunk's means and deviations stay in L1) with long vectorisable inner loops, whatever
// P is (P = 16 at 4x4, where per-channel loops would be 16 iterations long).
constexpr int64_t kChunk = 1024;
// Elements a parallel task should touch at least.
constexpr int64_t kStddevGrainElems = 1 << 15;

struct ChunkGrid {
  int64_t run = 0;     // L = c * P
  int64_t chunks = 0;  // chunks per run
  int64_t items = 0;   // n * F * chunks
};

ChunkGrid make_grid(const MinibatchStddevInputs& in) {
  ChunkGrid grid;
  grid.run = in.block_channels * in.positions;
  grid.chunks = (grid.run + kChunk - 1) / kChunk;
  grid.items = in.num_groups * in.blocks * grid.chunks;
  return grid;
}

int64_t item_grain(const MinibatchStddevInputs& in, const ChunkGrid& grid) {
  return std::max<int64_t>(1, kStddevGrainElems / std::max<int64_t>(1, in.group * std::min(grid.run, kChunk)));
}

// For the G members of a group, xs[gi] pointing at the same chunk of their runs: mean[k] and
// sd[k] = sqrt(biased variance + eps) for every element k of the chunk (two passes: the
// deviations are taken from the mean, as the reference does, not from raw moments).
template <typename scalar_t, typename acc_t>
BATCHGAN_CPU_MULTIVERSION void chunk_stddev(const scalar_t* const* xs, int64_t group, int64_t len,
                                            acc_t* __restrict mean, acc_t* __restrict sd) {
  for (int64_t k = 0; k < len; ++k) mean[k] = acc_t(0);
  for (int64_t gi = 0; gi < group; ++gi) {
    const scalar_t* __restrict xk = xs[gi];
    for (int64_t k = 0; k < len; ++k) mean[k] += static_cast<acc_t>(xk[k]);
  }
  const acc_t inv_g = acc_t(1) / static_cast<acc_t>(group);
  for (int64_t k = 0; k < len; ++k) {
    mean[k] *= inv_g;
    sd[k] = acc_t(0);
  }
  for (int64_t gi = 0; gi < group; ++gi) {
    const scalar_t* __restrict xk = xs[gi];
    for (int64_t k = 0; k < len; ++k) {
      const acc_t d = static_cast<acc_t>(xk[k]) - mean[k];
      sd[k] += d * d;
    }
  }
  for (int64_t k = 0; k < len; ++k) sd[k] = mbstd_stddev(sd[k], group);
}

// sum_k v[k]. omp simd lets the compiler reassociate the sum into vector lanes (-fopenmp
// build); a pragma cannot sit inside the AT_DISPATCH macro, hence a function.
template <typename acc_t>
BATCHGAN_CPU_MULTIVERSION acc_t sum_run(const acc_t* __restrict v, int64_t len) {
  acc_t total = 0;
#pragma omp simd reduction(+ : total)
  for (int64_t k = 0; k < len; ++k) total += v[k];
  return total;
}

// dst[k] = g[k] + mbstd_grad(a, x[k] - mean[k], sd[k], G): the gradient of the copied channel
// plus that of the stddev feature.
template <typename scalar_t, typename acc_t>
BATCHGAN_CPU_MULTIVERSION void grad_run(const scalar_t* __restrict g, const scalar_t* __restrict x,
                                        const acc_t* __restrict mean, const acc_t* __restrict sd, acc_t a,
                                        int64_t group, int64_t len, scalar_t* __restrict dst) {
  for (int64_t k = 0; k < len; ++k) {
    dst[k] =
        from_acc<scalar_t>(static_cast<acc_t>(g[k]) + mbstd_grad(a, static_cast<acc_t>(x[k]) - mean[k], sd[k], group));
  }
}

at::Tensor minibatch_stddev_cpu(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
  const MinibatchStddevInputs in = minibatch_stddev_prepare(x, group_size, num_channels);
  at::Tensor out = at::empty(in.out_shape, x.options());
  const ChunkGrid grid = make_grid(in);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "minibatch_stddev_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = in.x.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const int64_t P = in.positions, C = in.channels, CO = in.channels + in.blocks, n = in.num_groups;
    const int64_t G = in.group, F = in.blocks;
    // Phase 1, parallel over (group r, block f, chunk): copy the chunk of every member to the
    // output and sum the chunk's stddevs into partial[r, f, chunk].
    std::vector<acc_t> partial(grid.items);
    at::parallel_for(0, grid.items, item_grain(in, grid), [&](int64_t begin, int64_t end) {
      acc_t mean[kChunk], sd[kChunk];
      std::vector<const scalar_t*> xs(G);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t chunk = item % grid.chunks, rf = item / grid.chunks;
        const int64_t r = rf / F, f = rf % F;
        const int64_t k0 = chunk * kChunk, len = std::min(kChunk, grid.run - k0);
        for (int64_t gi = 0; gi < G; ++gi) {
          const int64_t sample = gi * n + r;
          xs[gi] = xp + sample * C * P + f * grid.run + k0;
          std::copy(xs[gi], xs[gi] + len, op + sample * CO * P + f * grid.run + k0);
        }
        chunk_stddev(xs.data(), G, len, mean, sd);
        partial[item] = sum_run(sd, len);
      }
    });
    // Phase 2: s[r, f] = mean of the stddevs, written as channel C + f of the group's samples.
    at::parallel_for(0, n * F, std::max<int64_t>(1, kStddevGrainElems / std::max<int64_t>(1, G * P)),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t rf = begin; rf < end; ++rf) {
                         const int64_t r = rf / F, f = rf % F;
                         const acc_t total = sum_run(partial.data() + rf * grid.chunks, grid.chunks);
                         const scalar_t s = static_cast<scalar_t>(total / static_cast<acc_t>(grid.run));
                         for (int64_t gi = 0; gi < G; ++gi) {
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
  const MinibatchStddevInputs in = minibatch_stddev_prepare(x, group_size, num_channels);
  const at::Tensor g = minibatch_stddev_check_grad(in, grad);
  at::Tensor grad_x = at::empty({in.batch, in.channels, in.positions}, x.options());
  const ChunkGrid grid = make_grid(in);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "minibatch_stddev_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = in.x.const_data_ptr<scalar_t>();
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    scalar_t* gx = grad_x.mutable_data_ptr<scalar_t>();
    const int64_t P = in.positions, C = in.channels, CO = in.channels + in.blocks, n = in.num_groups;
    const int64_t G = in.group, F = in.blocks;
    // a[r, f] = S / (c P), S the gradient summed over channel C + f of the group's samples and
    // positions (every one of them received s[r, f]).
    std::vector<acc_t> upstream(n * F);
    for (int64_t rf = 0; rf < n * F; ++rf) {
      const int64_t r = rf / F, f = rf % F;
      acc_t total = 0;
      for (int64_t gi = 0; gi < G; ++gi) {
        const scalar_t* __restrict src = gp + ((gi * n + r) * CO + C + f) * P;
        for (int64_t p = 0; p < P; ++p) total += static_cast<acc_t>(src[p]);
      }
      upstream[rf] = total / static_cast<acc_t>(grid.run);
    }
    at::parallel_for(0, grid.items, item_grain(in, grid), [&](int64_t begin, int64_t end) {
      acc_t mean[kChunk], sd[kChunk];
      std::vector<const scalar_t*> xs(G);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t chunk = item % grid.chunks, rf = item / grid.chunks;
        const int64_t r = rf / F, f = rf % F;
        const int64_t k0 = chunk * kChunk, len = std::min(kChunk, grid.run - k0);
        for (int64_t gi = 0; gi < G; ++gi) xs[gi] = xp + (gi * n + r) * C * P + f * grid.run + k0;
        chunk_stddev(xs.data(), G, len, mean, sd);
        for (int64_t gi = 0; gi < G; ++gi) {
          const int64_t sample = gi * n + r;
          grad_run(gp + sample * CO * P + f * grid.run + k0, xs[gi], mean, sd, upstream[rf], G, len,
                   gx + sample * C * P + f * grid.run + k0);
        }
      }
    });
  });
  return grad_x.view(x.sizes());
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CPU, m) {
  register_minibatch_stddev<&minibatch_stddev_cpu, &minibatch_stddev_backward_cpu, c10::DeviceType::CPU>(
      m, Registration::kImpl);
}

}  // namespace batchgan
