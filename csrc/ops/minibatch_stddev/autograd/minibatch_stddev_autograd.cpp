// Autograd of `minibatch_stddev`, in C++ as the other ops' autograd/ kernels (see
// mix_autograd.cpp): one pattern for every op, and gradients in the CMake-built library too.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

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
                       .findSchemaOrThrow("batchgan::minibatch_stddev_backward", "")
                       .typed<decltype(minibatch_stddev_backward_op)>();
  return op.call(grad, x, group_size, num_channels);
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
    // The backward kernel is not itself differentiable: a second derivative through it
    // (e.g. an R1 penalty with create_graph=True) raises instead of silently returning zeros.
    const bool differentiating = at::GradMode::is_enabled() && (grads[0].requires_grad() || x.requires_grad());
    TORCH_CHECK(!differentiating, "minibatch_stddev: double backward (create_graph=True) is not supported");
    at::Tensor grad_x = minibatch_stddev_backward_op(grads[0], x, ctx->saved_data["group_size"].toInt(),
                                                     ctx->saved_data["num_channels"].toInt());
    return {grad_x, at::Tensor(), at::Tensor()};
  }
};

at::Tensor minibatch_stddev_autograd(const at::Tensor& x, int64_t group_size, int64_t num_channels) {
  return MinibatchStddevFunction::apply(x, group_size, num_channels);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, Autograd, m) {
  m.impl("minibatch_stddev", &minibatch_stddev_autograd);
}

}  // namespace batchgan
