// CUDA kernels of `bernoulli_kl_loss`, written against the portable subset of
// device/device_api.h (run on the GPU from bernoulli_kl_loss_cuda.cu, on the CPU emulator in tests).
// One block per set: the block's threads stride over the set's samples and meet in a
// block reduction. Each block checks its set's target as it reads it (no separate launch).
#pragma once

#include <ATen/Dispatch.h>

#include "device/device_api.h"
#include "ops/bernoulli_kl_loss/bernoulli_kl_loss.h"

namespace batchgan {
namespace cuda {

template <typename scalar_t, typename acc_t>
__global__ void bernoulli_kl_forward_kernel(const scalar_t* __restrict__ logits, const acc_t* __restrict__ target,
                                            int64_t set_size, KLMode mode, scalar_t* __restrict__ per_sample,
                                            acc_t* __restrict__ set_total) {
  const int64_t g = blockIdx.x;
  const acc_t u = target[g];
  BATCHGAN_DEVICE_CHECK(kl_target_in_range(u), BATCHGAN_KL_TARGET_RANGE_MESSAGE);
  acc_t acc = 0;
  for (int64_t j = threadIdx.x; j < set_size; j += blockDim.x) {
    const int64_t i = g * set_size + j;
    const acc_t li = static_cast<acc_t>(logits[i]);
    if (mode == KLMode::kBgan) {
      acc += li;
    } else {
      const acc_t kl = bernoulli_kl_from_logit(li, u);
      if (per_sample != nullptr) per_sample[i] = static_cast<scalar_t>(kl);
      acc += kl;
    }
  }
  acc = block_reduce_sum(acc);
  if (threadIdx.x == 0) {
    set_total[g] = bernoulli_kl_set_total(mode, acc, set_size, u);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void bernoulli_kl_backward_kernel(const acc_t* __restrict__ grad, int64_t grad_stride, acc_t grad_scale,
                                             const scalar_t* __restrict__ logits, const acc_t* __restrict__ target,
                                             int64_t set_size, KLMode mode, scalar_t* __restrict__ grad_logits,
                                             acc_t* __restrict__ grad_target) {
  BATCHGAN_SHARED(acc_t, set_mean_logit);
  const int64_t g = blockIdx.x;
  const acc_t u = target[g];
  BATCHGAN_DEVICE_CHECK(kl_target_in_range(u), BATCHGAN_KL_TARGET_RANGE_MESSAGE);
  const int64_t first = g * set_size;
  if (mode == KLMode::kBgan) {
    acc_t sum = 0;
    for (int64_t j = threadIdx.x; j < set_size; j += blockDim.x) sum += static_cast<acc_t>(logits[first + j]);
    sum = block_reduce_sum(sum);
    if (threadIdx.x == 0) set_mean_logit = sum / static_cast<acc_t>(set_size);
    __syncthreads();
    const acc_t mean = set_mean_logit;
    const acc_t gg = grad[g * grad_stride] * grad_scale;
    const acc_t per_logit = gg * bernoulli_kl_grad_logit(mean, u) / static_cast<acc_t>(set_size);
    for (int64_t j = threadIdx.x; j < set_size; j += blockDim.x) {
      grad_logits[first + j] = static_cast<scalar_t>(per_logit);
    }
    if (threadIdx.x == 0) grad_target[g] = gg * bernoulli_kl_grad_target(mean, u);
  } else {
    acc_t acc = 0;
    for (int64_t j = threadIdx.x; j < set_size; j += blockDim.x) {
      const int64_t i = first + j;
      const acc_t li = static_cast<acc_t>(logits[i]);
      const acc_t gi = grad[i * grad_stride] * grad_scale;
      grad_logits[i] = static_cast<scalar_t>(gi * bernoulli_kl_grad_logit(li, u));
      acc += gi * bernoulli_kl_grad_target(li, u);
    }
    acc = block_reduce_sum(acc);
    if (threadIdx.x == 0) grad_target[g] = acc;
  }
}

inline at::Tensor bernoulli_kl_loss_device(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode,
                                           int64_t num_sets, c10::string_view reduction) {
  const KLInputs in = kl_prepare(logits, target, mode, num_sets, reduction);
  at::Tensor set_total = at::empty({in.num_sets}, logits.options().dtype(in.acc_type));
  const bool per_sample_out = in.mode == KLMode::kMbgan && in.reduction == Reduction::kNone;
  at::Tensor per_sample = per_sample_out ? at::empty({in.batch}, logits.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "bernoulli_kl_loss_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    BATCHGAN_LAUNCH_KERNEL((bernoulli_kl_forward_kernel<scalar_t, acc_t>), block_per_item_launch_config(in.num_sets),
                           in.logits.const_data_ptr<scalar_t>(), in.target.const_data_ptr<acc_t>(), in.set_size,
                           in.mode, per_sample_out ? per_sample.mutable_data_ptr<scalar_t>() : nullptr,
                           set_total.mutable_data_ptr<acc_t>());
  });
  return kl_finish_forward(in, set_total, per_sample, logits.scalar_type());
}

inline std::tuple<at::Tensor, at::Tensor> bernoulli_kl_loss_backward_device(const at::Tensor& grad,
                                                                            const at::Tensor& logits,
                                                                            const at::Tensor& target,
                                                                            c10::string_view mode, int64_t num_sets,
                                                                            c10::string_view reduction) {
  const KLInputs in = kl_prepare(logits, target, mode, num_sets, reduction);
  const KLGradAccess access = kl_check_grad(in, grad);
  const at::Tensor grad_c = grad.reshape({-1}).to(in.acc_type).contiguous();
  at::Tensor grad_logits = at::empty({in.batch}, logits.options());
  at::Tensor grad_target = at::empty({in.num_sets}, logits.options().dtype(in.acc_type));
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "bernoulli_kl_loss_backward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        BATCHGAN_LAUNCH_KERNEL((bernoulli_kl_backward_kernel<scalar_t, acc_t>),
                               block_per_item_launch_config(in.num_sets), grad_c.const_data_ptr<acc_t>(), access.stride,
                               static_cast<acc_t>(access.scale), in.logits.const_data_ptr<scalar_t>(),
                               in.target.const_data_ptr<acc_t>(), in.set_size, in.mode,
                               grad_logits.mutable_data_ptr<scalar_t>(), grad_target.mutable_data_ptr<acc_t>());
      });
  return {grad_logits.view(logits.sizes()), grad_target.to(target.scalar_type()).view(target.sizes())};
}

}  // namespace cuda
}  // namespace batchgan
