// The CUDA kernels of the equivariant layers compiled by the host compiler against the CPU
// emulator, registered as torch.ops.batchgan_emulated.* for the tests (module
// batchgan_ext._emulated). The products run in ATen on the CPU; the fused passes are the
// device code of equivariant_kernels.cuh with the real launch configurations.
#include <torch/library.h>

#include "ops/equivariant/cuda/equivariant_kernels.cuh"
#include "ops/equivariant/equivariant_schema.h"

namespace batchgan {
namespace {

at::Tensor equivariant_conv2d_emulated(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t num_sets, c10::string_view activation, double negative_slope) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  return std::get<0>(equivariant_conv2d_forward_impl<cuda::DeviceKernels>(x, weight, weight_gamma, bias, stride, padding, dilation, num_sets, activation, negative_slope));
}

std::tuple<at::Tensor, at::Tensor> equivariant_conv2d_forward_emulated(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t num_sets, c10::string_view activation, double negative_slope) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  return equivariant_conv2d_forward_impl<cuda::DeviceKernels>(x, weight, weight_gamma, bias, stride, padding, dilation, num_sets, activation, negative_slope);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> equivariant_conv2d_backward_emulated(const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x, const at::Tensor& x_mean, const at::Tensor& weight, const at::Tensor& weight_gamma, bool has_bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t num_sets, c10::string_view activation, double negative_slope, std::array<bool, 4> output_mask) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  return equivariant_conv2d_backward_impl<cuda::DeviceKernels>(grad, out, x, x_mean, weight, weight_gamma, has_bias, stride, padding, dilation, num_sets, activation, negative_slope, output_mask);
}

at::Tensor equivariant_linear_emulated(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias, int64_t num_sets, c10::string_view activation, double negative_slope) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  return std::get<0>(equivariant_linear_forward_impl<cuda::DeviceKernels>(x, weight, weight_gamma, bias, num_sets, activation, negative_slope));
}

std::tuple<at::Tensor, at::Tensor> equivariant_linear_forward_emulated(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias, int64_t num_sets, c10::string_view activation, double negative_slope) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  return equivariant_linear_forward_impl<cuda::DeviceKernels>(x, weight, weight_gamma, bias, num_sets, activation, negative_slope);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> equivariant_linear_backward_emulated(const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x, const at::Tensor& x_mean, const at::Tensor& weight, const at::Tensor& weight_gamma, bool has_bias, int64_t num_sets, c10::string_view activation, double negative_slope, std::array<bool, 4> output_mask) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  return equivariant_linear_backward_impl<cuda::DeviceKernels>(grad, out, x, x_mean, weight, weight_gamma, has_bias, num_sets, activation, negative_slope, output_mask);
}

at::Tensor set_mean_emulated(const at::Tensor& x, int64_t num_sets) {
  check_device_type(x, "x", c10::DeviceType::CPU);
  return set_mean_impl<cuda::DeviceKernels>(x, num_sets);
}

at::Tensor set_mean_backward_emulated(const at::Tensor& grad, int64_t batch) {
  check_device_type(grad, "grad", c10::DeviceType::CPU);
  return set_mean_backward_impl<cuda::DeviceKernels>(grad, batch);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(batchgan_emulated, m) {
  m.def(kEquivariantConv2dSchema, &equivariant_conv2d_emulated);
  m.def(kEquivariantConv2dForwardSchema, &equivariant_conv2d_forward_emulated);
  m.def(kEquivariantConv2dBackwardSchema, &equivariant_conv2d_backward_emulated);
  m.def(kEquivariantLinearSchema, &equivariant_linear_emulated);
  m.def(kEquivariantLinearForwardSchema, &equivariant_linear_forward_emulated);
  m.def(kEquivariantLinearBackwardSchema, &equivariant_linear_backward_emulated);
  m.def(kSetMeanSchema, &set_mean_emulated);
  m.def(kSetMeanBackwardSchema, &set_mean_backward_emulated);
}

}  // namespace batchgan
