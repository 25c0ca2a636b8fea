// Autograd of `pairwise_l1_features`, in C++ as the other ops' autograd/ kernels (see
// mix_autograd.cpp): one pattern for every op, and gradients in the CMake-built library too.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>

namespace batchgan {
namespace {

at::Tensor pairwise_l1_features_op(const at::Tensor& M, int64_t num_sets, bool exclude_self, bool mean,
                                   const std::optional<at::Tensor>& split, int64_t num_populations) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::pairwise_l1_features", "")
                       .typed<decltype(pairwise_l1_features_op)>();
  return op.call(M, num_sets, exclude_self, mean, split, num_populations);
}

at::Tensor pairwise_l1_features_backward_op(const at::Tensor& grad, const at::Tensor& M, int64_t num_sets,
                                            bool exclude_self, bool mean, const std::optional<at::Tensor>& split,
                                            int64_t num_populations) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::_pairwise_l1_features_backward", "")
                       .typed<decltype(pairwise_l1_features_backward_op)>();
  return op.call(grad, M, num_sets, exclude_self, mean, split, num_populations);
}

class PairwiseL1FeaturesFunction : public torch::autograd::Function<PairwiseL1FeaturesFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& M, int64_t num_sets,
                            bool exclude_self, bool mean, const std::optional<at::Tensor>& split,
                            int64_t num_populations) {
    at::AutoDispatchBelowADInplaceOrView guard;
    // Only M (N x B x C) and the labels are saved: the backward recomputes the pairwise terms.
    // An absent split is saved as an undefined tensor.
    ctx->save_for_backward({M, split.has_value() ? *split : at::Tensor()});
    ctx->saved_data["num_sets"] = num_sets;
    ctx->saved_data["exclude_self"] = exclude_self;
    ctx->saved_data["mean"] = mean;
    ctx->saved_data["num_populations"] = num_populations;
    return pairwise_l1_features_op(M, num_sets, exclude_self, mean, split, num_populations);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    // The backward kernel is not itself differentiable: a second derivative through it
    // raises instead of silently returning zeros.
    const bool differentiating = at::GradMode::is_enabled() && (grads[0].requires_grad() || saved[0].requires_grad());
    TORCH_CHECK(!differentiating, "pairwise_l1_features: double backward (create_graph=True) is not supported");
    const std::optional<at::Tensor> split =
        saved[1].defined() ? std::optional<at::Tensor>(saved[1]) : std::optional<at::Tensor>();
    at::Tensor grad_m = pairwise_l1_features_backward_op(
        grads[0], saved[0], ctx->saved_data["num_sets"].toInt(), ctx->saved_data["exclude_self"].toBool(),
        ctx->saved_data["mean"].toBool(), split, ctx->saved_data["num_populations"].toInt());
    // Only M is differentiable; split holds integer labels.
    return {grad_m, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor pairwise_l1_features_autograd(const at::Tensor& M, int64_t num_sets, bool exclude_self, bool mean,
                                         const std::optional<at::Tensor>& split, int64_t num_populations) {
  return PairwiseL1FeaturesFunction::apply(M, num_sets, exclude_self, mean, split, num_populations);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, Autograd, m) { m.impl("pairwise_l1_features", &pairwise_l1_features_autograd); }

}  // namespace batchgan
