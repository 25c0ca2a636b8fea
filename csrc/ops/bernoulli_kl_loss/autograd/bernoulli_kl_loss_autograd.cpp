// Autograd of `bernoulli_kl_loss`, in C++ for the reason given in mix_autograd.cpp: a Python
// autograd formula costs more than the kernels on every discriminator step.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <string>

namespace batchgan {
namespace {

at::Tensor bernoulli_kl_loss_op(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode,
                                int64_t num_sets, c10::string_view reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::bernoulli_kl_loss", "")
                       .typed<decltype(bernoulli_kl_loss_op)>();
  return op.call(logits, target, mode, num_sets, reduction);
}

std::tuple<at::Tensor, at::Tensor> bernoulli_kl_loss_backward_op(const at::Tensor& grad, const at::Tensor& logits,
                                                                 const at::Tensor& target, c10::string_view mode,
                                                                 int64_t num_sets, c10::string_view reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::_bernoulli_kl_loss_backward", "")
                       .typed<decltype(bernoulli_kl_loss_backward_op)>();
  return op.call(grad, logits, target, mode, num_sets, reduction);
}

class BernoulliKLLossFunction : public torch::autograd::Function<BernoulliKLLossFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& target,
                            c10::string_view mode, int64_t num_sets, c10::string_view reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({logits, target});
    ctx->saved_data["mode"] = std::string(mode);
    ctx->saved_data["num_sets"] = num_sets;
    ctx->saved_data["reduction"] = std::string(reduction);
    return bernoulli_kl_loss_op(logits, target, mode, num_sets, reduction);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    // The backward kernel is not itself differentiable: a second derivative through it
    // raises instead of silently returning zeros.
    const bool differentiating = at::GradMode::is_enabled() && (grads[0].requires_grad() || saved[0].requires_grad());
    TORCH_CHECK(!differentiating, "bernoulli_kl_loss: double backward (create_graph=True) is not supported");
    auto [grad_logits, grad_target] =
        bernoulli_kl_loss_backward_op(grads[0], saved[0], saved[1], ctx->saved_data["mode"].toStringRef(),
                                      ctx->saved_data["num_sets"].toInt(), ctx->saved_data["reduction"].toStringRef());
    const bool target_needs_grad = ctx->needs_input_grad(1);
    return {grad_logits, target_needs_grad ? grad_target : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor bernoulli_kl_loss_autograd(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode,
                                      int64_t num_sets, c10::string_view reduction) {
  return BernoulliKLLossFunction::apply(logits, target, mode, num_sets, reduction);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, Autograd, m) { m.impl("bernoulli_kl_loss", &bernoulli_kl_loss_autograd); }

}  // namespace batchgan
