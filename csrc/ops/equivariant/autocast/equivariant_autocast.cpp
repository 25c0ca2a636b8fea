// Autocast of the equivariant layers, as torchvision's csrc/ops/autocast: inside torch.autocast
// the products run in the autocast dtype (bfloat16 on the CPU, float16 on CUDA by default), as
// nn.Conv2d and nn.Linear do (autocast's lower-precision list). x, weight, weight_gamma and bias
// are cast (the parameters once per autocast region, by cached_cast), then the op runs below
// autocast. Without this, a spectral-norm weight or an input that autocast has already cast
// reaches the kernel in another dtype than x and the dtype check rejects it. set_mean takes one
// tensor and runs in its dtype, as torch.mean does.
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

namespace batchgan {
namespace {

at::Tensor equivariant_conv2d_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                 const c10::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                                 at::IntArrayRef dilation, int64_t groups, int64_t num_sets,
                                 c10::string_view activation, double negative_slope) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::equivariant_conv2d", "")
                       .typed<decltype(equivariant_conv2d_op)>();
  return op.call(x, weight, weight_gamma, bias, stride, padding, dilation, groups, num_sets, activation,
                 negative_slope);
}

at::Tensor equivariant_linear_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                 const c10::optional<at::Tensor>& bias, int64_t num_sets, c10::string_view activation,
                                 double negative_slope) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::equivariant_linear", "")
                       .typed<decltype(equivariant_linear_op)>();
  return op.call(x, weight, weight_gamma, bias, num_sets, activation, negative_slope);
}

template <c10::DispatchKey autocast_key, c10::DeviceType device>
at::Tensor equivariant_conv2d_autocast(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                       const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                       at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                       int64_t num_sets, c10::string_view activation, double negative_slope) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  const auto dtype = at::autocast::get_autocast_dtype(device);
  return equivariant_conv2d_op(
      at::autocast::cached_cast(dtype, x, device), at::autocast::cached_cast(dtype, weight, device),
      at::autocast::cached_cast(dtype, weight_gamma, device), at::autocast::cached_cast(dtype, bias, device), stride,
      padding, dilation, groups, num_sets, activation, negative_slope);
}

template <c10::DispatchKey autocast_key, c10::DeviceType device>
at::Tensor equivariant_linear_autocast(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& weight_gamma,
                                       const c10::optional<at::Tensor>& bias, int64_t num_sets,
                                       c10::string_view activation, double negative_slope) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  const auto dtype = at::autocast::get_autocast_dtype(device);
  return equivariant_linear_op(at::autocast::cached_cast(dtype, x, device),
                               at::autocast::cached_cast(dtype, weight, device),
                               at::autocast::cached_cast(dtype, weight_gamma, device),
                               at::autocast::cached_cast(dtype, bias, device), num_sets, activation, negative_slope);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, AutocastCPU, m) {
  m.impl("equivariant_conv2d", &equivariant_conv2d_autocast<c10::DispatchKey::AutocastCPU, c10::DeviceType::CPU>);
  m.impl("equivariant_linear", &equivariant_linear_autocast<c10::DispatchKey::AutocastCPU, c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(batchgan, AutocastCUDA, m) {
  m.impl("equivariant_conv2d", &equivariant_conv2d_autocast<c10::DispatchKey::AutocastCUDA, c10::DeviceType::CUDA>);
  m.impl("equivariant_linear", &equivariant_linear_autocast<c10::DispatchKey::AutocastCUDA, c10::DeviceType::CUDA>);
}

}  // namespace batchgan
