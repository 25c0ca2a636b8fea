// CPU kernels of `mix`: whole-sample memcpy gathers, parallel over (sample, chunk) pairs.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>

#include "common/sample_copy_cpu.h"
#include "ops/mix/mix.h"
#include "ops/mix/mix_math.h"
#include "ops/mix/mix_register.h"

namespace batchgan {
namespace {

at::Tensor mix_cpu(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& beta, bool complement) {
  const MixInputs in = mix_prepare(real, fake, beta);
  at::Tensor out = mix_allocate_output(in, complement);
  if (out.numel() == 0) return out;
  const int64_t sample_bytes = in.sample_numel * static_cast<int64_t>(real.element_size());
  const char* real_ptr = static_cast<const char*>(in.real.const_data_ptr());
  const char* fake_ptr = static_cast<const char*>(in.fake.const_data_ptr());
  const bool* beta_ptr = in.beta.const_data_ptr<bool>();
  const int64_t batch = in.batch;
  copy_samples_cpu(static_cast<char*>(out.mutable_data_ptr()), out.size(0), sample_bytes, [&](int64_t s) {
    const int64_t half = s / batch;
    const int64_t b = s - half * batch;
    return (mix_takes_real(beta_ptr[b], half) ? real_ptr : fake_ptr) + b * sample_bytes;
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> mix_backward_cpu(const at::Tensor& grad, const at::Tensor& beta, bool complement) {
  const MixBackwardInputs in = mix_backward_prepare(grad, beta, complement);
  at::Tensor grad_real = mix_allocate_input_grad(in);
  at::Tensor grad_fake = mix_allocate_input_grad(in);
  if (grad_real.numel() == 0) return {grad_real, grad_fake};
  const int64_t sample_bytes = in.sample_numel * static_cast<int64_t>(grad.element_size());
  const char* grad_ptr = static_cast<const char*>(in.grad.const_data_ptr());
  const bool* beta_ptr = in.beta.const_data_ptr<bool>();
  const int64_t batch = in.batch;
  char* dst[2] = {static_cast<char*>(grad_real.mutable_data_ptr()), static_cast<char*>(grad_fake.mutable_data_ptr())};
  // Both input gradients in one parallel pass: sample s < B is real's, s >= B is fake's.
  copy_samples_cpu([&](int64_t s) { return dst[s / batch] + (s % batch) * sample_bytes; }, 2 * batch, sample_bytes,
                   [&](int64_t s) -> const char* {
                     const int64_t b = s % batch;
                     const int64_t half = mix_grad_source_half(beta_ptr[b], /*to_real=*/s < batch, complement);
                     return half < 0 ? nullptr : grad_ptr + (half * batch + b) * sample_bytes;
                   });
  return {grad_real, grad_fake};
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CPU, m) {
  register_mix<&mix_cpu, &mix_backward_cpu, c10::DeviceType::CPU>(m, Registration::kImpl);
}

}  // namespace batchgan
