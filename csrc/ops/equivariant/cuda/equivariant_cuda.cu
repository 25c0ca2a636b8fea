// Registers the CUDA kernels of the equivariant layers (device code in equivariant_kernels.cuh;
// the products run in ATen, i.e. cuDNN / cuBLAS).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/equivariant/cuda/equivariant_kernels.cuh"

namespace batchgan {
namespace {

at::Tensor equivariant_conv2d_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t num_sets, c10::string_view activation, double negative_slope) {
  check_device_type(x, "x", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  return std::get<0>(equivariant_conv2d_forward_impl<cuda::DeviceKernels>(x, weight, weight_gamma, bias, stride, padding, dilation, num_sets, activation, negative_slope));
}

std::tuple<at::Tensor, at::Tensor> equivariant_conv2d_forward_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t num_sets, c10::string_view activation, double negative_slope) {
  check_device_type(x, "x", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  return equivariant_conv2d_forward_impl<cuda::DeviceKernels>(x, weight, weight_gamma, bias, stride, padding, dilation, num_sets, activation, negative_slope);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> equivariant_conv2d_backward_cuda(const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x, const at::Tensor& x_mean, const at::Tensor& weight, const at::Tensor& weight_gamma, bool has_bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t num_sets, c10::string_view activation, double negative_slope, std::array<bool, 4> output_mask) {
  check_device_type(x, "x", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  return equivariant_conv2d_backward_impl<cuda::DeviceKernels>(grad, out, x, x_mean, weight, weight_gamma, has_bias, stride, padding, dilation, num_sets, activation, negative_slope, output_mask);
}

at::Tensor equivariant_linear_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias, int64_t num_sets, c10::string_view activation, double negative_slope) {
  check_device_type(x, "x", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  return std::get<0>(equivariant_linear_forward_impl<cuda::DeviceKernels>(x, weight, weight_gamma, bias, num_sets, activation, negative_slope));
}

std::tuple<at::Tensor, at::Tensor> equivariant_linear_forward_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma, const c10::optional<at::Tensor>& bias, int64_t num_sets, c10::string_view activation, double negative_slope) {
  check_device_type(x, "x", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  return equivariant_linear_forward_impl<cuda::DeviceKernels>(x, weight, weight_gamma, bias, num_sets, activation, negative_slope);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> equivariant_linear_backward_cuda(const at::Tensor& grad, const at::Tensor& out, const at::Tensor& x, const at::Tensor& x_mean, const at::Tensor& weight, const at::Tensor& weight_gamma, bool has_bias, int64_t num_sets, c10::string_view activation, double negative_slope, std::array<bool, 4> output_mask) {
  check_device_type(x, "x", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  return equivariant_linear_backward_impl<cuda::DeviceKernels>(grad, out, x, x_mean, weight, weight_gamma, has_bias, num_sets, activation, negative_slope, output_mask);
}

at::Tensor set_mean_cuda(const at::Tensor& x, int64_t num_sets) {
  check_device_type(x, "x", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  return set_mean_impl<cuda::DeviceKernels>(x, num_sets);
}

at::Tensor set_mean_backward_cuda(const at::Tensor& grad, int64_t batch) {
  check_device_type(grad, "grad", c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(grad.device());
  return set_mean_backward_impl<cuda::DeviceKernels>(grad, batch);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CUDA, m) {
  m.impl("equivariant_conv2d", &equivariant_conv2d_cuda);
  m.impl("_equivariant_conv2d_forward", &equivariant_conv2d_forward_cuda);
  m.impl("_equivariant_conv2d_backward", &equivariant_conv2d_backward_cuda);
  m.impl("equivariant_linear", &equivariant_linear_cuda);
  m.impl("_equivariant_linear_forward", &equivariant_linear_forward_cuda);
  m.impl("_equivariant_linear_backward", &equivariant_linear_backward_cuda);
  m.impl("set_mean", &set_mean_cuda);
  m.impl("_set_mean_backward", &set_mean_backward_cuda);
}

}  // namespace batchgan
