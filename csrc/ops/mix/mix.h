// Host-side pieces of the `mix` op shared by its CPU kernel, its CUDA kernel and the emulated
// CUDA kernel: argument checks, input normalisation and output allocation.
#pragma once

#include <ATen/ATen.h>

#include "common/checks.h"

namespace batchgan {

struct MixInputs {
  at::Tensor real;  // contiguous in `format`
  at::Tensor fake;  // same layout as real
  at::Tensor beta;  // bool, contiguous, (B,)
  int64_t batch = 0;
  int64_t sample_numel = 0;
  at::MemoryFormat format = at::MemoryFormat::Contiguous;
};

// A 0/1 mask of length `batch` as a contiguous bool tensor. Non-boolean masks are accepted
// when every value is exactly 0 or 1 (checked on the device, see check_on_device).
inline at::Tensor mix_normalize_beta(const at::Tensor& beta, int64_t batch) {
  TORCH_CHECK(beta.defined(), "beta: expected a tensor, got None");
  TORCH_CHECK(beta.dim() == 1 && beta.size(0) == batch, "beta: expected a 1-d mask of length ", batch,
              " (the batch size), got shape ", beta.sizes());
  if (beta.scalar_type() == at::kBool) {
    return beta.contiguous();
  }
  TORCH_CHECK(!at::isComplexType(beta.scalar_type()), "beta: expected a boolean or 0/1 mask, got dtype ",
              beta.scalar_type());
  if (batch > 0) {
    check_on_device(at::logical_or(beta == 0, beta == 1).all(),
                    "beta: expected a boolean mask or values in {0, 1}, got other values");
  }
  return (beta != 0).contiguous();
}

inline MixInputs mix_prepare(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& beta) {
  check_float_tensor(real, "real");
  check_float_tensor(fake, "fake");
  TORCH_CHECK(real.dim() >= 1, "real: expected a batch of samples with the batch dimension first, got a 0-d tensor");
  TORCH_CHECK(fake.sizes() == real.sizes(), "fake: expected the shape of real ", real.sizes(), ", got ", fake.sizes());
  TORCH_CHECK(fake.scalar_type() == real.scalar_type(), "fake: expected the dtype of real (", real.scalar_type(),
              "), got ", fake.scalar_type());
  check_same_device(real, "real", fake, "fake");
  check_same_device(real, "real", beta, "beta");
  MixInputs in;
  in.batch = real.size(0);
  in.sample_numel = in.batch > 0 ? real.numel() / in.batch : 0;
  in.beta = mix_normalize_beta(beta, in.batch);
  // Both layouts keep each sample contiguous, so the op is a gather of whole samples;
  // a channels_last batch stays channels_last.
  in.format = real.suggest_memory_format();
  in.real = real.contiguous(in.format);
  in.fake = fake.contiguous(in.format);
  return in;
}

// (halves * B, ...) in the layout of real: the mixed batch, then the complement if asked.
inline at::Tensor mix_allocate_output(const MixInputs& in, bool complement) {
  std::vector<int64_t> shape = in.real.sizes().vec();
  shape[0] = in.batch * (complement ? 2 : 1);
  return at::empty(shape, in.real.options().memory_format(in.format));
}

struct MixBackwardInputs {
  at::Tensor grad;  // contiguous in `format`, (halves * B, ...)
  at::Tensor beta;  // bool, contiguous, (B,)
  int64_t batch = 0;
  int64_t sample_numel = 0;
  at::MemoryFormat format = at::MemoryFormat::Contiguous;
};

inline MixBackwardInputs mix_backward_prepare(const at::Tensor& grad, const at::Tensor& beta, bool complement) {
  check_float_tensor(grad, "grad");
  TORCH_CHECK(grad.dim() >= 1, "grad: expected the gradient of mix's output, got a 0-d tensor");
  check_same_device(grad, "grad", beta, "beta");
  const int64_t halves = complement ? 2 : 1;
  TORCH_CHECK(grad.size(0) % halves == 0, "grad: expected an even leading size (mixed and complement batches), got ",
              grad.size(0));
  MixBackwardInputs in;
  in.batch = grad.size(0) / halves;
  in.sample_numel = grad.size(0) > 0 ? grad.numel() / grad.size(0) : 0;
  in.beta = mix_normalize_beta(beta, in.batch);
  in.format = grad.suggest_memory_format();
  in.grad = grad.contiguous(in.format);
  return in;
}

// grad_real and grad_fake, (B, ...) each, in the layout of grad.
inline at::Tensor mix_allocate_input_grad(const MixBackwardInputs& in) {
  std::vector<int64_t> shape = in.grad.sizes().vec();
  shape[0] = in.batch;
  return at::empty(shape, in.grad.options().memory_format(in.format));
}

}  // namespace batchgan
