// Host-side pieces of `minibatch_stddev` shared by its CPU kernel, its CUDA kernel and the
// emulated CUDA kernel: argument checks and the (N, C, P) view of the input.
#pragma once

#include <ATen/ATen.h>

#include "common/checks.h"
#include "ops/minibatch_stddev/minibatch_stddev_math.h"

namespace batchgan {

struct MinibatchStddevInputs {
  at::Tensor x;                    // (N, C, P) contiguous: the spatial dims flattened into P positions
  int64_t batch = 0;               // N
  int64_t channels = 0;            // C
  int64_t positions = 1;           // P = H * W (1 for (N, C) inputs)
  int64_t group = 1;               // G = min(group_size, N): samples per group
  int64_t num_groups = 1;          // n = N / G
  int64_t blocks = 1;              // F = num_channels
  int64_t block_channels = 1;      // c = C / F
  std::vector<int64_t> out_shape;  // (N, C + F, *spatial)
  at::ScalarType acc_type = at::kFloat;
};

inline MinibatchStddevInputs minibatch_stddev_prepare(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
  check_float_tensor(x, "x");
  TORCH_CHECK(x.dim() >= 2, "x: expected a batch (N, C, *spatial) with at least 2 dims, got shape ", x.sizes());
  MinibatchStddevInputs in;
  in.batch = x.size(0);
  in.channels = x.size(1);
  TORCH_CHECK(in.batch > 0, "x: expected a non-empty batch, got N = 0 samples");
  TORCH_CHECK(group_size >= 1, "group_size: expected a positive group size, got ", group_size);
  TORCH_CHECK(num_channels >= 1, "num_channels: expected a positive number of stddev channels, got ", num_channels);
  // As StyleGAN2-ADA: a batch smaller than the group size forms one group of all N samples.
  in.group = std::min(group_size, in.batch);
  TORCH_CHECK(in.batch % in.group == 0, "group_size: the batch of ", in.batch,
              " samples is not divisible by the group ", "size ", in.group,
              " (N must be a multiple of min(group_size, N))");
  TORCH_CHECK(in.channels % num_channels == 0, "num_channels: the ", in.channels, " channels of x do not split into ",
              num_channels, " equal blocks");
  in.num_groups = in.batch / in.group;
  in.blocks = num_channels;
  in.block_channels = in.channels / num_channels;
  in.positions = 1;
  for (int64_t d = 2; d < x.dim(); ++d) in.positions *= x.size(d);
  in.acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  in.x = x.contiguous().view({in.batch, in.channels, in.positions});
  in.out_shape = x.sizes().vec();
  in.out_shape[1] = in.channels + num_channels;
  return in;
}

// The upstream gradient as a contiguous (N, C + F, P) tensor.
inline at::Tensor minibatch_stddev_check_grad(const MinibatchStddevInputs& in, const at::Tensor& grad) {
  check_float_tensor(grad, "grad");
  check_same_device(in.x, "x", grad, "grad");
  TORCH_CHECK(grad.sizes() == at::IntArrayRef(in.out_shape), "grad: expected the output shape ", in.out_shape, ", got ",
              grad.sizes());
  return grad.to(in.x.scalar_type()).contiguous().view({in.batch, in.channels + in.blocks, in.positions});
}

}  // namespace batchgan
