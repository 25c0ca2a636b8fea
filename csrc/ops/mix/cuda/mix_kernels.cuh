// CUDA kernels of `mix`, written against the portable subset of device/device_api.h: nvcc
// compiles them for the GPU (mix_cuda.cu), the host compiler for the CPU emulator (tests).
//
// The kernels move raw words of the element size: the gather never does arithmetic on the
// values, so one instantiation per width serves float16/bfloat16, float32 and float64.
#pragma once

#include <cstdint>

#include "device/device_api.h"
#include "ops/mix/mix.h"
#include "ops/mix/mix_math.h"

namespace batchgan {
namespace cuda {

// The sizes are IntDividers of index_t (device_api.h): no hardware division per element.

// out[s, k] for s in [0, halves * B): half 0 the mixed batch, half 1 the complement.
template <typename word_t, typename index_t>
__global__ void mix_forward_kernel(const word_t* __restrict__ real, const word_t* __restrict__ fake,
                                   const bool* __restrict__ beta, word_t* __restrict__ out, IntDivider<index_t> batch,
                                   IntDivider<index_t> sample_numel, index_t total) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const auto sk = sample_numel.divmod(i);
    const auto hb = batch.divmod(sk.div);
    const word_t* src = mix_takes_real(beta[hb.mod], static_cast<int64_t>(hb.div)) ? real : fake;
    out[i] = src[hb.mod * sample_numel.divisor + sk.mod];
  }
}

// grad_real and grad_fake together: element i < B*S belongs to grad_real, the rest to grad_fake.
template <typename word_t, typename index_t>
__global__ void mix_backward_kernel(const word_t* __restrict__ grad, const bool* __restrict__ beta,
                                    word_t* __restrict__ grad_real, word_t* __restrict__ grad_fake,
                                    IntDivider<index_t> sample_numel, index_t per_input, bool complement,
                                    index_t total) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const bool to_real = i < per_input;
    const index_t j = to_real ? i : i - per_input;
    const int64_t half = mix_grad_source_half(beta[sample_numel.div(j)], to_real, complement);
    word_t* dst = to_real ? grad_real : grad_fake;
    dst[j] = half < 0 ? word_t(0) : grad[static_cast<index_t>(half) * per_input + j];
  }
}

template <typename word_t>
void launch_mix_forward(const MixInputs& in, at::Tensor& out) {
  const int64_t total = out.numel();
  dispatch_index_type(total, [&]<typename index_t>() {
    BATCHGAN_LAUNCH_KERNEL((mix_forward_kernel<word_t, index_t>), elementwise_launch_config(total),
                           static_cast<const word_t*>(in.real.const_data_ptr()),
                           static_cast<const word_t*>(in.fake.const_data_ptr()), in.beta.const_data_ptr<bool>(),
                           static_cast<word_t*>(out.mutable_data_ptr()), IntDivider<index_t>(in.batch),
                           IntDivider<index_t>(in.sample_numel), static_cast<index_t>(total));
  });
}

template <typename word_t>
void launch_mix_backward(const MixBackwardInputs& in, bool complement, at::Tensor& grad_real, at::Tensor& grad_fake) {
  const int64_t total = 2 * grad_real.numel();
  dispatch_index_type(total, [&]<typename index_t>() {
    BATCHGAN_LAUNCH_KERNEL((mix_backward_kernel<word_t, index_t>), elementwise_launch_config(total),
                           static_cast<const word_t*>(in.grad.const_data_ptr()), in.beta.const_data_ptr<bool>(),
                           static_cast<word_t*>(grad_real.mutable_data_ptr()),
                           static_cast<word_t*>(grad_fake.mutable_data_ptr()), IntDivider<index_t>(in.sample_numel),
                           static_cast<index_t>(grad_real.numel()), complement, static_cast<index_t>(total));
  });
}

// Calls f.template operator()<word_t>() with the unsigned word type of `element_size` bytes.
template <typename F>
void dispatch_word(int64_t element_size, const F& f) {
  switch (element_size) {
    case 2: f.template operator()<uint16_t>(); break;
    case 4: f.template operator()<uint32_t>(); break;
    case 8: f.template operator()<uint64_t>(); break;
    default: TORCH_CHECK(false, "batchgan internal error: unsupported element size ", element_size);
  }
}

inline at::Tensor mix_forward_device(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& beta,
                                     bool complement) {
  const MixInputs in = mix_prepare(real, fake, beta);
  at::Tensor out = mix_allocate_output(in, complement);
  if (out.numel() == 0) return out;
  dispatch_word(real.element_size(), [&]<typename word_t>() { launch_mix_forward<word_t>(in, out); });
  return out;
}

inline std::tuple<at::Tensor, at::Tensor> mix_backward_device(const at::Tensor& grad, const at::Tensor& beta,
                                                              bool complement) {
  const MixBackwardInputs in = mix_backward_prepare(grad, beta, complement);
  at::Tensor grad_real = mix_allocate_input_grad(in);
  at::Tensor grad_fake = mix_allocate_input_grad(in);
  if (grad_real.numel() == 0) return {grad_real, grad_fake};
  dispatch_word(grad.element_size(),
                [&]<typename word_t>() { launch_mix_backward<word_t>(in, complement, grad_real, grad_fake); });
  return {grad_real, grad_fake};
}

}  // namespace cuda
}  // namespace batchgan
