// The registration of the equivariant layers' kernels (equivariant_conv2d, equivariant_linear,
// set_mean and their helper ops), written once for every backend (CPU, CUDA, the emulated CUDA
// kernels): each wrapper checks that the op's first tensor is on kDevice, makes its device
// current (Guard) and runs the orchestration of equivariant.h with Backend's fused kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <tuple>

#include "common/checks.h"
#include "common/registration.h"
#include "ops/equivariant/equivariant.h"
#include "ops/equivariant/equivariant_schema.h"

namespace batchgan {

template <typename Backend, c10::DeviceType kDevice, typename Guard>
struct EquivariantKernels {
  using OutAndMean = std::tuple<at::Tensor, at::Tensor>;
  using Grads4 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

  static OutAndMean conv2d_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                   const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                   at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, int64_t num_sets,
                                   c10::string_view activation, double negative_slope) {
    check_device_type(x, "x", kDevice);
    const Guard guard(x.device());
    return equivariant_conv2d_forward_impl<Backend>(x, weight, weight_gamma, bias, stride, padding, dilation, groups,
                                                    num_sets, activation, negative_slope);
  }

  static at::Tensor conv2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                           const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                           at::IntArrayRef dilation, int64_t groups, int64_t num_sets, c10::string_view activation,
                           double negative_slope) {
    return std::get<0>(conv2d_forward(x, weight, weight_gamma, bias, stride, padding, dilation, groups, num_sets,
                                      activation, negative_slope));
  }

  static Grads4 conv2d_backward(const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x,
                                const at::Tensor& x_mean, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                bool has_bias, at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, int64_t groups, int64_t num_sets, c10::string_view activation,
                                double negative_slope, std::array<bool, 4> output_mask) {
    check_device_type(x, "x", kDevice);
    const Guard guard(x.device());
    return equivariant_conv2d_backward_impl<Backend>(grad, out, x, x_mean, weight, weight_gamma, has_bias, stride,
                                                     padding, dilation, groups, num_sets, activation, negative_slope,
                                                     output_mask);
  }

  static OutAndMean linear_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                   const c10::optional<at::Tensor>& bias, int64_t num_sets, c10::string_view activation,
                                   double negative_slope) {
    check_device_type(x, "x", kDevice);
    const Guard guard(x.device());
    return equivariant_linear_forward_impl<Backend>(x, weight, weight_gamma, bias, num_sets, activation,
                                                    negative_slope);
  }

  static at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                           const c10::optional<at::Tensor>& bias, int64_t num_sets, c10::string_view activation,
                           double negative_slope) {
    return std::get<0>(linear_forward(x, weight, weight_gamma, bias, num_sets, activation, negative_slope));
  }

  static Grads4 linear_backward(const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x,
                                const at::Tensor& x_mean, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                bool has_bias, int64_t num_sets, c10::string_view activation, double negative_slope,
                                std::array<bool, 4> output_mask) {
    check_device_type(x, "x", kDevice);
    const Guard guard(x.device());
    return equivariant_linear_backward_impl<Backend>(grad, out, x, x_mean, weight, weight_gamma, has_bias, num_sets,
                                                     activation, negative_slope, output_mask);
  }

  static at::Tensor set_mean(const at::Tensor& x, int64_t num_sets) {
    check_device_type(x, "x", kDevice);
    const Guard guard(x.device());
    return set_mean_impl<Backend>(x, num_sets);
  }

  static at::Tensor set_mean_backward(const at::Tensor& grad, int64_t batch) {
    check_device_type(grad, "grad", kDevice);
    const Guard guard(grad.device());
    return set_mean_backward_impl<Backend>(grad, batch);
  }
};

template <typename Backend, c10::DeviceType kDevice, typename Guard = NoDeviceGuard>
void register_equivariant(torch::Library& m, Registration how) {
  using Kernels = EquivariantKernels<Backend, kDevice, Guard>;
  register_kernel(m, how, kEquivariantConv2dSchema, &Kernels::conv2d);
  register_kernel(m, how, kEquivariantConv2dForwardSchema, &Kernels::conv2d_forward);
  register_kernel(m, how, kEquivariantConv2dBackwardSchema, &Kernels::conv2d_backward);
  register_kernel(m, how, kEquivariantLinearSchema, &Kernels::linear);
  register_kernel(m, how, kEquivariantLinearForwardSchema, &Kernels::linear_forward);
  register_kernel(m, how, kEquivariantLinearBackwardSchema, &Kernels::linear_backward);
  register_kernel(m, how, kSetMeanSchema, &Kernels::set_mean);
  register_kernel(m, how, kSetMeanBackwardSchema, &Kernels::set_mean_backward);
}

}  // namespace batchgan
