// Autograd of `mix`, in C++ as torchvision's csrc/ops/autograd kernels: the op is a cheap,
// memory-bound gather on every training step, and a Python autograd formula
// (torch.library.register_autograd) measured ~110 us of overhead per forward+backward here,
// more than the copy itself at CIFAR sizes. A C++ kernel also gives the CMake-built library
// (no Python) its gradients.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace batchgan {
namespace {

at::Tensor mix_op(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& beta, bool complement) {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("batchgan::mix", "").typed<decltype(mix_op)>();
  return op.call(real, fake, beta, complement);
}

std::tuple<at::Tensor, at::Tensor> mix_backward_op(const at::Tensor& grad, const at::Tensor& beta, bool complement) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("batchgan::_mix_backward", "").typed<decltype(mix_backward_op)>();
  return op.call(grad, beta, complement);
}

class MixFunction : public torch::autograd::Function<MixFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& real, const at::Tensor& fake,
                            const at::Tensor& beta, bool complement) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({beta});
    ctx->saved_data["complement"] = complement;
    return mix_op(real, fake, beta, complement);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor beta = ctx->get_saved_variables()[0];
    const bool complement = ctx->saved_data["complement"].toBool();
    // Routed through the dispatcher (and MixBackwardFunction) so double backward works.
    auto [grad_real, grad_fake] = mix_backward_op(grads[0], beta, complement);
    return {grad_real, grad_fake, at::Tensor(), at::Tensor()};
  }
};

// mix_backward is linear in grad; its adjoint is mix itself.
class MixBackwardFunction : public torch::autograd::Function<MixBackwardFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& grad,
                                                const at::Tensor& beta, bool complement) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({beta});
    ctx->saved_data["complement"] = complement;
    auto [grad_real, grad_fake] = mix_backward_op(grad, beta, complement);
    return {grad_real, grad_fake};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor beta = ctx->get_saved_variables()[0];
    const bool complement = ctx->saved_data["complement"].toBool();
    at::Tensor gg_real = grads[0];
    at::Tensor gg_fake = grads[1];
    if (!gg_real.defined() && !gg_fake.defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    if (!gg_real.defined()) gg_real = at::zeros_like(gg_fake);
    if (!gg_fake.defined()) gg_fake = at::zeros_like(gg_real);
    return {mix_op(gg_real, gg_fake, beta, complement), at::Tensor(), at::Tensor()};
  }
};

at::Tensor mix_autograd(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& beta, bool complement) {
  return MixFunction::apply(real, fake, beta, complement);
}

std::tuple<at::Tensor, at::Tensor> mix_backward_autograd(const at::Tensor& grad, const at::Tensor& beta,
                                                         bool complement) {
  auto grads = MixBackwardFunction::apply(grad, beta, complement);
  return {grads[0], grads[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, Autograd, m) {
  m.impl("mix", &mix_autograd);
  m.impl("_mix_backward", &mix_backward_autograd);
}

}  // namespace batchgan
