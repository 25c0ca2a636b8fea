// Autocast of bernoulli_kl_loss: inside torch.autocast the loss runs in float32, as
// binary_cross_entropy_with_logits does (autocast's float32 list: a KL of probabilities near 0
// or 1 loses its digits in bfloat16 or float16), so logits from a lower-precision
// discriminator and a float32 target meet in one dtype.
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

namespace batchgan {
namespace {

at::Tensor bernoulli_kl_loss_op(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode,
                                int64_t num_sets, c10::string_view reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("batchgan::bernoulli_kl_loss", "")
                       .typed<decltype(bernoulli_kl_loss_op)>();
  return op.call(logits, target, mode, num_sets, reduction);
}

template <c10::DispatchKey autocast_key, c10::DeviceType device>
at::Tensor bernoulli_kl_loss_autocast(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode,
                                      int64_t num_sets, c10::string_view reduction) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  return bernoulli_kl_loss_op(at::autocast::cached_cast(at::kFloat, logits, device),
                              at::autocast::cached_cast(at::kFloat, target, device), mode, num_sets, reduction);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, AutocastCPU, m) {
  m.impl("bernoulli_kl_loss", &bernoulli_kl_loss_autocast<c10::DispatchKey::AutocastCPU, c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(batchgan, AutocastCUDA, m) {
  m.impl("bernoulli_kl_loss", &bernoulli_kl_loss_autocast<c10::DispatchKey::AutocastCUDA, c10::DeviceType::CUDA>);
}

}  // namespace batchgan
