// Autocast of mix: inside torch.autocast, real and fake are cast to the wider of their two
// floating dtypes (autocast's promote list, as torch.cat and torch.where are), so fake samples
// from a generator run under autocast mix with float32 real samples. beta, a mask, is not cast.
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

namespace batchgan {
namespace {

at::Tensor mix_op(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& beta, bool complement) {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("batchgan::mix", "").typed<decltype(mix_op)>();
  return op.call(real, fake, beta, complement);
}

template <c10::DispatchKey autocast_key>
at::Tensor mix_autocast(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& beta, bool complement) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  if (at::isFloatingType(real.scalar_type()) && at::isFloatingType(fake.scalar_type()) &&
      real.scalar_type() != fake.scalar_type()) {
    const auto dtype = at::promote_types(real.scalar_type(), fake.scalar_type());
    return mix_op(real.to(dtype), fake.to(dtype), beta, complement);
  }
  return mix_op(real, fake, beta, complement);
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, AutocastCPU, m) { m.impl("mix", &mix_autocast<c10::DispatchKey::AutocastCPU>); }

TORCH_LIBRARY_IMPL(batchgan, AutocastCUDA, m) { m.impl("mix", &mix_autocast<c10::DispatchKey::AutocastCUDA>); }

}  // namespace batchgan
