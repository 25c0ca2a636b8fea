// Autograd of the permutation-equivariant layers (equivariant_conv2d, equivariant_linear,
// set_mean, set_mean_backward), in C++ for the reason given in mix_autograd.cpp: the Python
// formula (torch.library.register_autograd) cost ~80-110 us per forward+backward, a large
// share of a small layer (the 2D experiment's 512-unit linear layers at batch 64 take
// ~250 us plain).
//
// Only the gradients autograd asks for are computed: needs_input_grad becomes the backward
// op's output_mask. The fused backward ops have no autograd of their own; under
// create_graph=True (a gradient penalty, say: WGAN-GP, R1) the backward is instead composed of
// differentiable ops (layer_backward), so second derivatives are exact.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <tuple>
#include <vector>

#include "ops/equivariant/equivariant.h"

namespace batchgan {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Grads4 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// ---- dispatcher handles (so every call goes through the dispatcher) --------------------

using OutAndMean = std::tuple<at::Tensor, at::Tensor>;

OutAndMean equivariant_conv2d_forward_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                         const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                         at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                         int64_t num_sets, c10::string_view activation, double negative_slope) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::_equivariant_conv2d_forward", "")
                       .typed<decltype(equivariant_conv2d_forward_op)>();
  return op.call(x, weight, weight_gamma, bias, stride, padding, dilation, groups, num_sets, activation,
                 negative_slope);
}

Grads4 equivariant_conv2d_backward_op(const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x,
                                      const at::Tensor& x_mean, const at::Tensor& weight,
                                      const at::Tensor& weight_gamma, bool has_bias, at::IntArrayRef stride,
                                      at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                      int64_t num_sets, c10::string_view activation, double negative_slope,
                                      std::array<bool, 4> output_mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::_equivariant_conv2d_backward", "")
                       .typed<decltype(equivariant_conv2d_backward_op)>();
  return op.call(grad, out, x, x_mean, weight, weight_gamma, has_bias, stride, padding, dilation, groups, num_sets,
                 activation, negative_slope, output_mask);
}

OutAndMean equivariant_linear_forward_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                         const c10::optional<at::Tensor>& bias, int64_t num_sets,
                                         c10::string_view activation, double negative_slope) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::_equivariant_linear_forward", "")
                       .typed<decltype(equivariant_linear_forward_op)>();
  return op.call(x, weight, weight_gamma, bias, num_sets, activation, negative_slope);
}

Grads4 equivariant_linear_backward_op(const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x,
                                      const at::Tensor& x_mean, const at::Tensor& weight,
                                      const at::Tensor& weight_gamma, bool has_bias, int64_t num_sets,
                                      c10::string_view activation, double negative_slope,
                                      std::array<bool, 4> output_mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::_equivariant_linear_backward", "")
                       .typed<decltype(equivariant_linear_backward_op)>();
  return op.call(grad, out, x, x_mean, weight, weight_gamma, has_bias, num_sets, activation, negative_slope,
                 output_mask);
}

at::Tensor set_mean_op(const at::Tensor& x, int64_t num_sets) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("batchgan::set_mean", "").typed<decltype(set_mean_op)>();
  return op.call(x, num_sets);
}

at::Tensor set_mean_backward_op(const at::Tensor& grad, int64_t batch) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::_set_mean_backward", "")
                       .typed<decltype(set_mean_backward_op)>();
  return op.call(grad, batch);
}

// ---- equivariant_conv2d and equivariant_linear ------------------------------------------

// Saves (out, x, x_mean, weight, weight_gamma), whether there is a bias, and the arguments both
// layers have. x_mean is the forward's set means (G samples): saved so that the backward does
// not read x again for them.
void save_layer(AutogradContext* ctx, const at::Tensor& out, const at::Tensor& x, const at::Tensor& x_mean,
                const at::Tensor& weight, const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias,
                int64_t num_sets, c10::string_view activation, double negative_slope) {
  ctx->save_for_backward({out, x, x_mean, weight, weight_gamma});
  ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
  ctx->saved_data["num_sets"] = num_sets;
  ctx->saved_data["activation"] = std::string(activation);
  ctx->saved_data["negative_slope"] = negative_slope;
}

// True when the backward itself is being recorded (create_graph=True with a differentiable
// input): the fused backward ops have no autograd, so the differentiable path is taken.
bool differentiating_backward(const at::Tensor& grad, const variable_list& saved) {
  if (!at::GradMode::is_enabled()) return false;
  bool any = grad.requires_grad();
  for (const auto& t : saved) any = any || (t.defined() && t.requires_grad());
  return any;
}

// dz = act'(z) dy with act' read off the output y, as the fused kernels do
// (equivariant_math.h); ATen's activation backward ops are themselves differentiable.
at::Tensor activation_backward_differentiable(const at::Tensor& grad, const at::Tensor& out,
                                              c10::string_view activation, double negative_slope) {
  switch (parse_activation(activation, negative_slope)) {
    case Activation::kIdentity: return grad;
    case Activation::kRelu: return at::threshold_backward(grad, out, 0);
    case Activation::kLeakyRelu: return at::leaky_relu_backward(grad, out, negative_slope, /*self_is_result=*/true);
  }
  return grad;
}

// The backward of both layers. Layer supplies what differs, the product (convolution or
// matrix product):
//   kNumOtherArgs                 the forward's arguments after (x, weight, weight_gamma, bias)
//   kBiasSumDims                  the dims of dzs summed for the bias gradient
//   fused_backward(ctx, grad, saved, has_bias, mask)   the fused backward op
//   product_backward(ctx, d, in, w, need_in, need_w)   (d * w^T, in^T d): the product's gradients
// When the backward is itself differentiated (create_graph=True) it is composed of
// differentiable ops instead: ATen's activation and product backward, set_mean and
// set_mean_backward, so second derivatives are exact.
template <typename Layer>
variable_list layer_backward(AutogradContext* ctx, const variable_list& grads) {
  const variable_list saved = ctx->get_saved_variables();
  const bool has_bias = ctx->saved_data["has_bias"].toBool();
  // output_mask from needs_input_grad; edges exist only for x, weight, weight_gamma and a
  // defined bias (index 3).
  const std::array<bool, 4> mask = {ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2),
                                    has_bias && ctx->needs_input_grad(3)};
  Grads4 result;
  if (differentiating_backward(grads[0], saved)) {
    const at::Tensor &out = saved[0], &x = saved[1], &weight = saved[3], &weight_gamma = saved[4];
    const int64_t num_sets = ctx->saved_data["num_sets"].toInt();
    const at::Tensor dz = activation_backward_differentiable(grads[0], out, ctx->saved_data["activation"].toStringRef(),
                                                             ctx->saved_data["negative_slope"].toDouble());
    // Per-set sums dzs (G, ...) of dz and the set means of x, recorded in the graph.
    const at::Tensor dzs = set_mean_op(dz, num_sets) * static_cast<double>(x.size(0) / num_sets);
    const at::Tensor xm = set_mean_op(x, num_sets);
    auto [grad_x, grad_w] = Layer::product_backward(ctx, dz, x, weight, mask[0], mask[1]);
    auto [grad_xm, grad_g] = Layer::product_backward(ctx, dzs, xm, weight_gamma, mask[0], mask[2]);
    if (mask[0]) grad_x = grad_x + set_mean_backward_op(grad_xm, x.size(0));
    const at::Tensor grad_b = mask[3] ? dzs.sum(at::IntArrayRef(Layer::kBiasSumDims)) : at::Tensor();
    result = {grad_x, grad_w, grad_g, grad_b};
  } else {
    result = Layer::fused_backward(ctx, grads[0], saved, has_bias, mask);
  }
  // Gradients for (x, weight, weight_gamma, bias), then undefined ones for the other
  // arguments; gradients not asked for are undefined (the fused op returns (0,) for them).
  variable_list grads_out = {mask[0] ? std::get<0>(result) : at::Tensor(), mask[1] ? std::get<1>(result) : at::Tensor(),
                             mask[2] ? std::get<2>(result) : at::Tensor(),
                             mask[3] ? std::get<3>(result) : at::Tensor()};
  grads_out.resize(4 + Layer::kNumOtherArgs);
  return grads_out;
}

class EquivariantConv2dFunction : public torch::autograd::Function<EquivariantConv2dFunction> {
 public:
  static constexpr size_t kNumOtherArgs = 7;
  static constexpr std::array<int64_t, 3> kBiasSumDims = {0, 2, 3};

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias,
                            at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                            int64_t num_sets, c10::string_view activation, double negative_slope) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [out, x_mean] = equivariant_conv2d_forward_op(x, weight, weight_gamma, bias, stride, padding, dilation, groups,
                                                       num_sets, activation, negative_slope);
    save_layer(ctx, out, x, x_mean, weight, weight_gamma, bias, num_sets, activation, negative_slope);
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    ctx->saved_data["dilation"] = dilation.vec();
    ctx->saved_data["groups"] = groups;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return layer_backward<EquivariantConv2dFunction>(ctx, grads);
  }

  static Grads4 fused_backward(AutogradContext* ctx, const at::Tensor& grad, const variable_list& saved, bool has_bias,
                               const std::array<bool, 4>& mask) {
    return equivariant_conv2d_backward_op(
        grad, saved[0], saved[1], saved[2], saved[3], saved[4], has_bias, ctx->saved_data["stride"].toIntVector(),
        ctx->saved_data["padding"].toIntVector(), ctx->saved_data["dilation"].toIntVector(),
        ctx->saved_data["groups"].toInt(), ctx->saved_data["num_sets"].toInt(),
        ctx->saved_data["activation"].toStringRef(), ctx->saved_data["negative_slope"].toDouble(), mask);
  }

  static std::pair<at::Tensor, at::Tensor> product_backward(AutogradContext* ctx, const at::Tensor& d,
                                                            const at::Tensor& in, const at::Tensor& w, bool need_in,
                                                            bool need_w) {
    auto [grad_in, grad_w, unused_bias] =
        at::convolution_backward(d, in, w, c10::nullopt, ctx->saved_data["stride"].toIntVector(),
                                 ctx->saved_data["padding"].toIntVector(), ctx->saved_data["dilation"].toIntVector(),
                                 false, {0, 0}, ctx->saved_data["groups"].toInt(), {need_in, need_w, false});
    return {grad_in, grad_w};
  }
};

class EquivariantLinearFunction : public torch::autograd::Function<EquivariantLinearFunction> {
 public:
  static constexpr size_t kNumOtherArgs = 3;
  static constexpr std::array<int64_t, 1> kBiasSumDims = {0};

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias, int64_t num_sets,
                            c10::string_view activation, double negative_slope) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [out, x_mean] =
        equivariant_linear_forward_op(x, weight, weight_gamma, bias, num_sets, activation, negative_slope);
    save_layer(ctx, out, x, x_mean, weight, weight_gamma, bias, num_sets, activation, negative_slope);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return layer_backward<EquivariantLinearFunction>(ctx, grads);
  }

  static Grads4 fused_backward(AutogradContext* ctx, const at::Tensor& grad, const variable_list& saved, bool has_bias,
                               const std::array<bool, 4>& mask) {
    return equivariant_linear_backward_op(
        grad, saved[0], saved[1], saved[2], saved[3], saved[4], has_bias, ctx->saved_data["num_sets"].toInt(),
        ctx->saved_data["activation"].toStringRef(), ctx->saved_data["negative_slope"].toDouble(), mask);
  }

  static std::pair<at::Tensor, at::Tensor> product_backward(AutogradContext*, const at::Tensor& d, const at::Tensor& in,
                                                            const at::Tensor& w, bool need_in, bool need_w) {
    return {need_in ? at::mm(d, w) : at::Tensor(), need_w ? at::mm(d.t(), in) : at::Tensor()};
  }
};

// ---- set_mean and its adjoint ------------------------------------------------------------

class SetMeanFunction : public torch::autograd::Function<SetMeanFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t num_sets) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor out = set_mean_op(x, num_sets);  // checks x first (a 0-d x has no batch size)
    // sym_size: no error if traced with symbolic shapes (the backward op takes a plain int).
    ctx->saved_data["batch"] = x.sym_size(0);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // Routed through the dispatcher (and SetMeanBackwardFunction) so double backward works.
    const int64_t batch = ctx->saved_data["batch"].toSymInt().guard_int(__FILE__, __LINE__);
    return {set_mean_backward_op(grads[0], batch), at::Tensor()};
  }
};

// set_mean_backward is linear in grad; its adjoint is set_mean.
class SetMeanBackwardFunction : public torch::autograd::Function<SetMeanBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad, int64_t batch) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor out = set_mean_backward_op(grad, batch);
    ctx->saved_data["num_sets"] = grad.sym_size(0);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const int64_t num_sets = ctx->saved_data["num_sets"].toSymInt().guard_int(__FILE__, __LINE__);
    return {set_mean_op(grads[0], num_sets), at::Tensor()};
  }
};

// ---- registration ------------------------------------------------------------------------

at::Tensor equivariant_conv2d_autograd(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                       const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                       at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                       int64_t num_sets, c10::string_view activation, double negative_slope) {
  return EquivariantConv2dFunction::apply(x, weight, weight_gamma, bias, stride, padding, dilation, groups, num_sets,
                                          activation, negative_slope);
}

at::Tensor equivariant_linear_autograd(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                       const c10::optional<at::Tensor>& bias, int64_t num_sets,
                                       c10::string_view activation, double negative_slope) {
  return EquivariantLinearFunction::apply(x, weight, weight_gamma, bias, num_sets, activation, negative_slope);
}

at::Tensor set_mean_autograd(const at::Tensor& x, int64_t num_sets) { return SetMeanFunction::apply(x, num_sets); }

at::Tensor set_mean_backward_autograd(const at::Tensor& grad, int64_t batch) {
  return SetMeanBackwardFunction::apply(grad, batch);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, Autograd, m) {
  m.impl("equivariant_conv2d", &equivariant_conv2d_autograd);
  m.impl("equivariant_linear", &equivariant_linear_autograd);
  m.impl("set_mean", &set_mean_autograd);
  m.impl("_set_mean_backward", &set_mean_backward_autograd);
}

}  // namespace batchgan
