// Host side of the equivariant layers (BGAN paper, section 4, eq. 10-12), shared by the CPU
// kernels, the CUDA kernels and the emulated CUDA kernels: argument checks, and the
// orchestration of one layer, templated on the backend that provides the four fused kernels.
//
// Forward, for a batch of N samples in G sets of S = N/G:
//   main = x * Lambda                 on all N samples, in ATen (oneDNN / BLAS / cuDNN)
//   xm   = set_mean(x)                (G, ...) kernel: one pass over x
//   gm   = xm * Gamma                 on the G set means only, never expanded to N samples
//   y    = act(main + bias + gm[set]) kernel: one fused pass, in place on main
// Backward, from dy, y and the saved xm:
//   dz, dzs = act'(y) dy, per-set sum of dz     kernel: one fused pass
//   dx  = dz * Lambda^T (+) ;  dLambda = x^T dz  ATen, on all N samples
//   dxm = dzs * Gamma^T ;      dGamma  = xm^T dzs ATen, on G samples only
//   dx += dxm[set] / S                          kernel: one fused pass (d rho / d x_b = 1/S)
//   dbias = sum of dzs                          on G samples only
//
// Backend interface (static member functions; tensors are contiguous in one memory format, so
// every sample is a contiguous block of `inner` elements):
//   set_mean(x, out, layout)                        out[g] = mean of x over set g
//   epilogue_forward(y, gm, bias_acc, layout, act, slope)
//   epilogue_backward(grad, out, dz, dzs, layout, act, slope)
//   broadcast_add(dst, src, layout, accumulate)     dst[n] = (accumulate ? dst[n] : 0) + src[set(n)] / S
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include <array>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "common/checks.h"
#include "ops/equivariant/equivariant_math.h"

namespace batchgan {

// Sizes the fused kernels need. Sample n belongs to set n / set_size.
struct SetLayout {
  int64_t batch = 0;
  int64_t num_sets = 1;
  int64_t set_size = 1;
  int64_t inner = 0;        // elements per sample
  int64_t channels = 1;     // bias channels (epilogue only)
  int64_t chan_stride = 1;  // distance between channels inside a sample (H*W for NCHW, else 1)
};

inline Activation parse_activation(c10::string_view activation, double negative_slope) {
  Activation act;
  if (activation == "identity") {
    act = Activation::kIdentity;
  } else if (activation == "relu") {
    act = Activation::kRelu;
  } else if (activation == "leaky_relu") {
    act = Activation::kLeakyRelu;
  } else {
    TORCH_CHECK(false, "activation: expected 'identity', 'relu' or 'leaky_relu', got '", std::string(activation), "'");
  }
  // The backward reads act' off the output, which needs y > 0 <=> z > 0 (equivariant_math.h).
  TORCH_CHECK(act != Activation::kLeakyRelu || (std::isfinite(negative_slope) && negative_slope >= 0.0),
              "negative_slope: expected a finite value >= 0, got ", negative_slope);
  // leaky_relu with slope 0 is relu; the relu path avoids 0 * inf in the blended formulas.
  if (act == Activation::kLeakyRelu && negative_slope == 0.0) act = Activation::kRelu;
  return act;
}

inline SetLayout make_set_layout(int64_t batch, int64_t num_sets, const char* x_name) {
  TORCH_CHECK(batch > 0, x_name, ": expected a non-empty batch, got 0 samples");
  check_num_sets(batch, num_sets);
  SetLayout layout;
  layout.batch = batch;
  layout.num_sets = num_sets;
  layout.set_size = batch / num_sets;
  return layout;
}

inline void check_like_x(const at::Tensor& x, const at::Tensor& t, const char* name) {
  check_float_tensor(t, name);
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), name, ": expected the dtype of x (", x.scalar_type(), "), got ",
              t.scalar_type());
  check_same_device(x, "x", t, name);
}

// weight (Lambda), weight_gamma (Gamma) and bias against x, with the input channels/features
// of x split into `groups` channel groups (nn.Conv2d's; 1 for the linear layer).
inline void check_layer_params(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                               const c10::optional<at::Tensor>& bias, int64_t weight_dim, const char* weight_desc,
                               int64_t groups = 1) {
  check_like_x(x, weight, "weight");
  check_like_x(x, weight_gamma, "weight_gamma");
  TORCH_CHECK(weight.dim() == weight_dim, "weight: expected a ", weight_dim, "-d tensor ", weight_desc, ", got shape ",
              weight.sizes());
  TORCH_CHECK(groups >= 1, "groups: expected a positive number of channel groups, got ", groups);
  TORCH_CHECK(x.size(1) % groups == 0, "groups: the ", x.size(1), " input channels of x do not split into ", groups,
              " groups");
  TORCH_CHECK(weight.size(0) % groups == 0, "groups: the ", weight.size(0),
              " output channels of weight do not split into ", groups, " groups");
  TORCH_CHECK(weight.size(1) * groups == x.size(1), "weight: expected ", x.size(1) / groups, " input channels/features",
              groups > 1 ? " per group" : "", " (x has shape ", x.sizes(),
              groups > 1 ? ", groups " + std::to_string(groups) : std::string(), "), got shape ", weight.sizes());
  TORCH_CHECK(weight_gamma.sizes() == weight.sizes(), "weight_gamma: expected the shape of weight ", weight.sizes(),
              ", got ", weight_gamma.sizes());
  if (bias.has_value() && bias->defined()) {
    check_like_x(x, *bias, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), "bias: expected shape (", weight.size(0),
                ",), got ", bias->sizes());
  }
}

inline void check_conv_params(at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  TORCH_CHECK(stride.size() == 2 && stride[0] >= 1 && stride[1] >= 1, "stride: expected two positive integers, got ",
              stride);
  TORCH_CHECK(padding.size() == 2 && padding[0] >= 0 && padding[1] >= 0,
              "padding: expected two non-negative integers, got ", padding);
  TORCH_CHECK(dilation.size() == 2 && dilation[0] >= 1 && dilation[1] >= 1,
              "dilation: expected two positive integers, got ", dilation);
}

// The padded input must hold the dilated kernel at least once (ATen's conv would report it
// without naming an argument).
inline void check_conv_output_size(const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef padding,
                                   at::IntArrayRef dilation) {
  for (int64_t d = 0; d < 2; ++d) {
    const int64_t padded = x.size(2 + d) + 2 * padding[d];
    const int64_t extent = dilation[d] * (weight.size(2 + d) - 1) + 1;
    TORCH_CHECK(padded >= extent, "x: the input of spatial size ", x.sizes().slice(2), " padded by ", padding,
                " is smaller than the kernel of weight (", weight.sizes().slice(2), ", dilation ", dilation,
                "): no output position");
  }
}

inline void check_conv_input(const at::Tensor& x) {
  check_float_tensor(x, "x");
  TORCH_CHECK(x.dim() == 4, "x: expected a 4-d batch (N, C, H, W), got shape ", x.sizes());
}

inline void check_linear_input(const at::Tensor& x) {
  check_float_tensor(x, "x");
  TORCH_CHECK(x.dim() == 2, "x: expected a 2-d batch (N, features), got shape ", x.sizes());
}

inline void check_grad_like_out(const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x) {
  check_like_x(x, grad, "grad");
  check_like_x(x, out, "out");
  TORCH_CHECK(out.dim() == x.dim() && out.size(0) == x.size(0), "out: expected the layer's output for x, got shape ",
              out.sizes());
  TORCH_CHECK(grad.sizes() == out.sizes(), "grad: expected the shape of out ", out.sizes(), ", got ", grad.sizes());
}

// Bias in the accumulation dtype (zeros without bias), so the kernels have one code path.
inline at::Tensor bias_in_acc(const c10::optional<at::Tensor>& bias, int64_t channels, const at::Tensor& x) {
  const at::ScalarType acc = at::toOpMathType(x.scalar_type());
  if (bias.has_value() && bias->defined()) return bias->to(acc).contiguous();
  return at::zeros({channels}, x.options().dtype(acc));
}

inline at::Tensor empty_grad(const at::Tensor& x) { return at::empty({0}, x.options()); }

// Per-set sum over G images of dzs: the bias gradient, accumulated in float32 or better.
inline at::Tensor bias_grad_from_set_sums(const at::Tensor& dzs, at::IntArrayRef dims) {
  return at::sum(dzs, dims, false, at::toOpMathType(dzs.scalar_type())).to(dzs.scalar_type());
}

template <typename Backend>
at::Tensor set_mean_impl(const at::Tensor& x, int64_t num_sets) {
  check_float_tensor(x, "x");
  TORCH_CHECK(x.dim() >= 1, "x: expected a batch with the batch dimension first, got a 0-d tensor");
  SetLayout layout = make_set_layout(x.size(0), num_sets, "x");
  const at::MemoryFormat fmt = x.suggest_memory_format();
  const at::Tensor x_c = x.contiguous(fmt);
  layout.inner = x_c.numel() / layout.batch;
  std::vector<int64_t> shape = x.sizes().vec();
  shape[0] = num_sets;
  at::Tensor out = at::empty(shape, x.options().memory_format(fmt));
  if (out.numel() > 0) Backend::set_mean(x_c, out, layout);
  return out;
}

template <typename Backend>
at::Tensor set_mean_backward_impl(const at::Tensor& grad, int64_t batch) {
  check_float_tensor(grad, "grad");
  TORCH_CHECK(grad.dim() >= 1, "grad: expected the gradient of set_mean's output, got a 0-d tensor");
  TORCH_CHECK(batch > 0, "batch: expected a positive batch size, got ", batch);
  SetLayout layout = make_set_layout(batch, grad.size(0), "grad");
  const at::MemoryFormat fmt = grad.suggest_memory_format();
  const at::Tensor grad_c = grad.contiguous(fmt);
  layout.inner = grad.size(0) > 0 ? grad_c.numel() / grad.size(0) : 0;
  std::vector<int64_t> shape = grad.sizes().vec();
  shape[0] = batch;
  at::Tensor out = at::empty(shape, grad.options().memory_format(fmt));
  if (out.numel() > 0) Backend::broadcast_add(out, grad_c, layout, /*accumulate=*/false);
  return out;
}

// ---- conv2d -----------------------------------------------------------------------------

// The saved set means against x: (G, rest of x's shape), x's dtype and device.
inline void check_x_mean(const at::Tensor& x, const at::Tensor& x_mean, int64_t num_sets) {
  check_like_x(x, x_mean, "x_mean");
  std::vector<int64_t> expected = x.sizes().vec();
  expected[0] = num_sets;
  TORCH_CHECK(x_mean.sizes() == at::IntArrayRef(expected), "x_mean: expected the set means of x, shape ",
              at::IntArrayRef(expected), ", got ", x_mean.sizes());
}

// Returns (y, xm): the layer's output and the set means it used.
template <typename Backend>
std::tuple<at::Tensor, at::Tensor> equivariant_conv2d_forward_impl(
    const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
    const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    int64_t groups, int64_t num_sets, c10::string_view activation, double negative_slope) {
  const Activation act = parse_activation(activation, negative_slope);
  check_conv_input(x);
  check_layer_params(x, weight, weight_gamma, bias, 4, "(C_out, C_in/groups, kh, kw)", groups);
  check_conv_params(stride, padding, dilation);
  check_conv_output_size(x, weight, padding, dilation);
  SetLayout layout = make_set_layout(x.size(0), num_sets, "x");
  // Keep the caller's layout: channels_last stays channels_last end to end.
  const at::MemoryFormat fmt = x.suggest_memory_format();
  const at::Tensor x_c = x.contiguous(fmt);
  layout.inner = x_c.numel() / layout.batch;
  at::Tensor xm = at::empty({num_sets, x.size(1), x.size(2), x.size(3)}, x.options().memory_format(fmt));
  if (xm.numel() > 0) Backend::set_mean(x_c, xm, layout);
  // Bias goes to the epilogue, not to the backend's conv: it is one more read there for free.
  at::Tensor main = at::conv2d(x_c, weight, {}, stride, padding, dilation, groups).contiguous(fmt);
  const at::Tensor gm = at::conv2d(xm, weight_gamma, {}, stride, padding, dilation, groups).contiguous(fmt);
  layout.inner = main.numel() / layout.batch;
  layout.channels = main.size(1);
  layout.chan_stride = fmt == at::MemoryFormat::ChannelsLast ? 1 : main.size(2) * main.size(3);
  if (main.numel() > 0) {
    Backend::epilogue_forward(main, gm, bias_in_acc(bias, layout.channels, x), layout, act, negative_slope);
  }
  return {main, xm};
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> equivariant_conv2d_backward_impl(
    const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x, const at::Tensor& x_mean,
    const at::Tensor& weight, const at::Tensor& weight_gamma, bool has_bias, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, int64_t num_sets, c10::string_view activation,
    double negative_slope, std::array<bool, 4> output_mask) {
  const Activation act = parse_activation(activation, negative_slope);
  check_conv_input(x);
  check_layer_params(x, weight, weight_gamma, c10::nullopt, 4, "(C_out, C_in/groups, kh, kw)", groups);
  check_conv_params(stride, padding, dilation);
  check_grad_like_out(grad, out, x);
  TORCH_CHECK(out.size(1) == weight.size(0), "out: expected ", weight.size(0), " channels, got shape ", out.sizes());
  SetLayout layout = make_set_layout(x.size(0), num_sets, "x");
  check_x_mean(x, x_mean, num_sets);
  const at::MemoryFormat fmt = x.suggest_memory_format();
  const at::Tensor x_c = x.contiguous(fmt);
  const at::Tensor grad_c = grad.contiguous(fmt);
  const at::Tensor out_c = out.contiguous(fmt);
  const bool need_x = output_mask[0], need_w = output_mask[1], need_g = output_mask[2];
  const bool need_b = output_mask[3] && has_bias;

  at::Tensor dz = at::empty_like(out_c, out_c.options().memory_format(fmt));
  at::Tensor dzs = at::empty({num_sets, out.size(1), out.size(2), out.size(3)}, out.options().memory_format(fmt));
  layout.inner = out_c.numel() / layout.batch;
  if (out_c.numel() > 0)
    Backend::epilogue_backward(grad_c, out_c, dz, dzs, layout, act, negative_slope);
  else
    dzs.zero_();

  at::Tensor grad_x, grad_w, grad_g;
  if (need_x || need_w) {
    auto r = at::convolution_backward(dz, x_c, weight, c10::nullopt, stride, padding, dilation, false, {0, 0}, groups,
                                      {need_x, need_w, false});
    grad_x = std::get<0>(r);
    grad_w = std::get<1>(r).contiguous();
  }
  if (need_x || need_g) {
    const at::Tensor xm = x_mean.contiguous(fmt);
    auto r = at::convolution_backward(dzs, xm, weight_gamma, c10::nullopt, stride, padding, dilation, false, {0, 0},
                                      groups, {need_x, need_g, false});
    grad_g = std::get<1>(r).contiguous();
    if (need_x) {
      grad_x = grad_x.contiguous(fmt);
      const at::Tensor grad_xm = std::get<0>(r).contiguous(fmt);
      layout.inner = grad_x.numel() / layout.batch;
      if (grad_x.numel() > 0) Backend::broadcast_add(grad_x, grad_xm, layout, /*accumulate=*/true);
    }
  }
  at::Tensor grad_b = need_b ? bias_grad_from_set_sums(dzs, {0, 2, 3}) : empty_grad(x);
  return {need_x ? grad_x : empty_grad(x), need_w ? grad_w : empty_grad(x), need_g ? grad_g : empty_grad(x), grad_b};
}

// ---- linear -----------------------------------------------------------------------------

// Linear layers with at most this many input features (the 2D experiments' first layer has 2)
// skip the GEMM on backends with kFusedSmallLinear: the product is K multiply-adds per output
// inside the fused passes, so the forward writes y once and the backward reads (dy, y) once for
// all of dz's uses, where a GEMM with K = 2 would write and re-read a whole (N, O) tensor.
constexpr int64_t kSmallLinearFeatures = 4;

template <typename Backend>
bool use_small_linear(const at::Tensor& x) {
  if constexpr (Backend::kFusedSmallLinear) {
    return x.size(1) >= 1 && x.size(1) <= kSmallLinearFeatures;
  } else {
    return false;
  }
}

// Returns (y, xm): the layer's output and the set means it used.
template <typename Backend>
std::tuple<at::Tensor, at::Tensor> equivariant_linear_forward_impl(const at::Tensor& x, const at::Tensor& weight,
                                                                   const at::Tensor& weight_gamma,
                                                                   const c10::optional<at::Tensor>& bias,
                                                                   int64_t num_sets, c10::string_view activation,
                                                                   double negative_slope) {
  const Activation act = parse_activation(activation, negative_slope);
  check_linear_input(x);
  check_layer_params(x, weight, weight_gamma, bias, 2, "(out_features, in_features)");
  SetLayout layout = make_set_layout(x.size(0), num_sets, "x");
  const at::Tensor x_c = x.contiguous();
  layout.inner = x.size(1);
  at::Tensor xm = at::empty({num_sets, x.size(1)}, x.options());
  if (xm.numel() > 0) Backend::set_mean(x_c, xm, layout);
  if constexpr (Backend::kFusedSmallLinear) {
    if (use_small_linear<Backend>(x)) {
      // c = bias + Gamma term per set, in the accumulation dtype; then one pass writes y.
      const at::ScalarType acc = at::toOpMathType(x.scalar_type());
      const at::Tensor c = (at::mm(xm, weight_gamma.t()).to(acc) + bias_in_acc(bias, weight.size(0), x)).contiguous();
      at::Tensor y = at::empty({x.size(0), weight.size(0)}, x.options());
      if (y.numel() > 0) Backend::small_linear_forward(x_c, weight.contiguous(), c, y, layout, act, negative_slope);
      return {y, xm};
    }
  }
  at::Tensor main = at::mm(x_c, weight.t());
  const at::Tensor gm = at::mm(xm, weight_gamma.t());
  layout.inner = main.size(1);
  layout.channels = main.size(1);
  layout.chan_stride = 1;
  if (main.numel() > 0) {
    Backend::epilogue_forward(main, gm, bias_in_acc(bias, layout.channels, x), layout, act, negative_slope);
  }
  return {main, xm};
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> equivariant_linear_backward_impl(
    const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x, const at::Tensor& x_mean,
    const at::Tensor& weight, const at::Tensor& weight_gamma, bool has_bias, int64_t num_sets,
    c10::string_view activation, double negative_slope, std::array<bool, 4> output_mask) {
  const Activation act = parse_activation(activation, negative_slope);
  check_linear_input(x);
  check_layer_params(x, weight, weight_gamma, c10::nullopt, 2, "(out_features, in_features)");
  check_grad_like_out(grad, out, x);
  TORCH_CHECK(out.size(1) == weight.size(0), "out: expected ", weight.size(0), " features, got shape ", out.sizes());
  SetLayout layout = make_set_layout(x.size(0), num_sets, "x");
  check_x_mean(x, x_mean, num_sets);
  const at::Tensor x_c = x.contiguous();
  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor out_c = out.contiguous();
  const bool need_x = output_mask[0], need_w = output_mask[1], need_g = output_mask[2];
  const bool need_b = output_mask[3] && has_bias;

  at::Tensor dzs = at::empty({num_sets, out.size(1)}, out.options());
  at::Tensor grad_x, grad_w;
  bool fused_small = false;
  if constexpr (Backend::kFusedSmallLinear) {
    if (use_small_linear<Backend>(x)) {
      // One pass gives dzs and both products; dz itself is never stored.
      fused_small = true;
      grad_x = at::empty_like(x_c);
      grad_w = at::empty({weight.size(0), weight.size(1)}, weight.options());
      if (out_c.numel() > 0) {
        Backend::small_linear_backward(grad_c, out_c, x_c, weight.contiguous(), dzs, grad_x, grad_w, layout, act,
                                       negative_slope);
      } else {
        dzs.zero_();
        grad_x.zero_();
        grad_w.zero_();
      }
      if (!need_x) grad_x = empty_grad(x);
      if (!need_w) grad_w = empty_grad(x);
    }
  }
  if (!fused_small) {
    at::Tensor dz = at::empty_like(out_c);
    layout.inner = out.size(1);
    if (out_c.numel() > 0)
      Backend::epilogue_backward(grad_c, out_c, dz, dzs, layout, act, negative_slope);
    else
      dzs.zero_();
    grad_x = need_x ? at::mm(dz, weight) : empty_grad(x);
    grad_w = need_w ? at::mm(dz.t(), x_c) : empty_grad(x);
  }
  at::Tensor grad_g = empty_grad(x);
  if (need_g) grad_g = at::mm(dzs.t(), x_mean.contiguous());
  if (need_x && grad_x.numel() > 0) {
    const at::Tensor grad_xm = at::mm(dzs, weight_gamma);
    layout.inner = x.size(1);
    Backend::broadcast_add(grad_x, grad_xm, layout, /*accumulate=*/true);
  }
  at::Tensor grad_b = need_b ? bias_grad_from_set_sums(dzs, {0}) : empty_grad(x);
  return {grad_x, grad_w, grad_g, grad_b};
}

}  // namespace batchgan
