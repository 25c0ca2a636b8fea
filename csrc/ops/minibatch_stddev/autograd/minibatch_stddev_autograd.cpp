// Autograd of `minibatch_stddev`, in C++ as the other ops' autograd/ kernels (see
// mix_autograd.cpp): one pattern for every op, and gradients in the CMake-built library too.
// The fused backward op has no autograd of its own; under create_graph=True (StyleGAN's R1
// penalty runs through this layer) the gradient is instead composed of differentiable ATen ops,
// so second derivatives are exact.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/minibatch_stddev/minibatch_stddev_math.h"

namespace batchgan {
namespace {

at::Tensor minibatch_stddev_op(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::minibatch_stddev", "")
                       .typed<decltype(minibatch_stddev_op)>();
  return op.call(x, group_size, num_channels);
}

at::Tensor minibatch_stddev_backward_op(const at::Tensor& grad, const at::Tensor& x, int64_t group_size,
                                        int64_t num_channels) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::_minibatch_stddev_backward", "")
                       .typed<decltype(minibatch_stddev_backward_op)>();
  return op.call(grad, x, group_size, num_channels);
}

// dL/dx of minibatch_stddev_math.h from differentiable ops: the copied channels pass their
// gradient through; the stddev channel f of group r adds a[r, f] (x - mean) / (G std) with
// a = (its gradient summed over the group's samples and positions) / (c P).
at::Tensor minibatch_stddev_backward_differentiable(const at::Tensor& grad, const at::Tensor& x, int64_t group_size,
                                                    int64_t num_channels) {
  const int64_t N = x.size(0), C = x.size(1), F = num_channels;
  TORCH_CHECK(N > 0 && group_size >= 1 && F >= 1 && C % F == 0, "minibatch_stddev: invalid saved arguments");
  const int64_t G = std::min(group_size, N), n = N / G, c = C / F;
  const int64_t P = C > 0 ? x.numel() / (N * C) : 1;
  const at::Tensor gs = grad.reshape({N, C + F, P});
  const at::Tensor upstream = gs.narrow(1, C, F).reshape({G, n, F, P}).sum({0, 3}) / static_cast<double>(c * P);
  const at::Tensor y = x.reshape({G, n, F, c, P});
  const at::Tensor dev = y - y.mean(0, /*keepdim=*/true);
  const at::Tensor sd = (dev.square().mean(0, /*keepdim=*/true) + kMinibatchStddevEps).sqrt();
  const at::Tensor g_stat = upstream.reshape({1, n, F, 1, 1}) * dev / (sd * static_cast<double>(G));
  return (gs.narrow(1, 0, C) + g_stat.reshape({N, C, P})).reshape(x.sizes());
}

class MinibatchStddevFunction : public torch::autograd::Function<MinibatchStddevFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t group_size,
                            int64_t num_channels) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x});
    ctx->saved_data["group_size"] = group_size;
    ctx->saved_data["num_channels"] = num_channels;
    return minibatch_stddev_op(x, group_size, num_channels);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const int64_t group_size = ctx->saved_data["group_size"].toInt();
    const int64_t num_channels = ctx->saved_data["num_channels"].toInt();
    // create_graph=True with a differentiable input: record the composite backward.
    const bool differentiating = at::GradMode::is_enabled() && (grads[0].requires_grad() || x.requires_grad());
    at::Tensor grad_x = differentiating
                            ? minibatch_stddev_backward_differentiable(grads[0], x, group_size, num_channels)
                            : minibatch_stddev_backward_op(grads[0], x, group_size, num_channels);
    return {grad_x, at::Tensor(), at::Tensor()};
  }
};

at::Tensor minibatch_stddev_autograd(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
  return MinibatchStddevFunction::apply(x, group_size, num_channels);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, Autograd, m) { m.impl("minibatch_stddev", &minibatch_stddev_autograd); }

}  // namespace batchgan
