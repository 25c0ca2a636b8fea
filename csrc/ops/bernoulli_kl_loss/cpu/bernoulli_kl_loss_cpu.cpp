// CPU kernels of `bernoulli_kl_loss`: num_sets in parallel, samples of a set in order.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>

#include "ops/bernoulli_kl_loss/bernoulli_kl_loss.h"
#include "ops/bernoulli_kl_loss/bernoulli_kl_loss_register.h"

namespace batchgan {
namespace {

// Samples of work below which a task is not worth a thread.
constexpr int64_t kKLGrainSamples = 4096;

int64_t set_grain(int64_t set_size) { return std::max<int64_t>(1, kKLGrainSamples / set_size); }

at::Tensor bernoulli_kl_loss_cpu(const at::Tensor& logits, const at::Tensor& target, c10::string_view mode,
                                 int64_t num_sets, c10::string_view reduction) {
  const KLInputs in = kl_prepare(logits, target, mode, num_sets, reduction);
  at::Tensor set_total = at::empty({in.num_sets}, logits.options().dtype(in.acc_type));
  at::Tensor result;
  std::atomic<bool> target_in_range{true};
  const bool per_sample_out = in.mode == KLMode::kMbgan && in.reduction == Reduction::kNone;
  at::Tensor per_sample = per_sample_out ? at::empty({in.batch}, logits.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "bernoulli_kl_loss_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* l = in.logits.const_data_ptr<scalar_t>();
    const acc_t* u = in.target.const_data_ptr<acc_t>();
    acc_t* totals = set_total.mutable_data_ptr<acc_t>();
    scalar_t* per = per_sample_out ? per_sample.mutable_data_ptr<scalar_t>() : nullptr;
    const int64_t n = in.set_size;
    at::parallel_for(0, in.num_sets, set_grain(n), [&](int64_t begin, int64_t end) {
      for (int64_t g = begin; g < end; ++g) {
        if (!kl_target_in_range(u[g])) target_in_range = false;
        acc_t acc = 0;
        for (int64_t i = g * n; i < (g + 1) * n; ++i) {
          const acc_t li = static_cast<acc_t>(l[i]);
          if (in.mode == KLMode::kBgan) {
            acc += li;
          } else {
            const acc_t kl = bernoulli_kl_from_logit(li, u[g]);
            if (per) per[i] = static_cast<scalar_t>(kl);
            acc += kl;
          }
        }
        totals[g] = bernoulli_kl_set_total(in.mode, acc, n, u[g]);
      }
    });
    kl_check_target_range(target_in_range);
    if (in.reduction != Reduction::kNone) {
      // The scalar directly, without further ATen reductions (this op runs every step).
      acc_t total = 0;
      for (int64_t g = 0; g < in.num_sets; ++g) total += totals[g];
      if (in.reduction == Reduction::kMean) {
        total /= static_cast<acc_t>(in.mode == KLMode::kBgan ? in.num_sets : in.batch);
      }
      result = at::scalar_tensor(static_cast<double>(total), logits.options());
    }
  });
  return result.defined() ? result : kl_finish_forward(in, set_total, per_sample, logits.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> bernoulli_kl_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& logits,
                                                                  const at::Tensor& target, c10::string_view mode,
                                                                  int64_t num_sets, c10::string_view reduction) {
  const KLInputs in = kl_prepare(logits, target, mode, num_sets, reduction);
  std::atomic<bool> target_in_range{true};
  const KLGradAccess access = kl_check_grad(in, grad);
  const at::Tensor grad_c = grad.reshape({-1}).to(in.acc_type).contiguous();
  at::Tensor grad_logits = at::empty({in.batch}, logits.options());
  at::Tensor grad_target = at::empty({in.num_sets}, logits.options().dtype(in.acc_type));
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "bernoulli_kl_loss_backward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const scalar_t* l = in.logits.const_data_ptr<scalar_t>();
        const acc_t* u = in.target.const_data_ptr<acc_t>();
        const acc_t* go = grad_c.const_data_ptr<acc_t>();
        scalar_t* gl = grad_logits.mutable_data_ptr<scalar_t>();
        acc_t* gt = grad_target.mutable_data_ptr<acc_t>();
        const int64_t n = in.set_size;
        const acc_t scale = static_cast<acc_t>(access.scale);
        at::parallel_for(0, in.num_sets, set_grain(n), [&](int64_t begin, int64_t end) {
          for (int64_t g = begin; g < end; ++g) {
            if (!kl_target_in_range(u[g])) target_in_range = false;
            if (in.mode == KLMode::kBgan) {
              acc_t sum = 0;
              for (int64_t i = g * n; i < (g + 1) * n; ++i) sum += static_cast<acc_t>(l[i]);
              const acc_t mean = sum / static_cast<acc_t>(n);
              const acc_t gg = go[g * access.stride] * scale;
              const acc_t per_logit = gg * bernoulli_kl_grad_logit(mean, u[g]) / static_cast<acc_t>(n);
              for (int64_t i = g * n; i < (g + 1) * n; ++i) gl[i] = static_cast<scalar_t>(per_logit);
              gt[g] = gg * bernoulli_kl_grad_target(mean, u[g]);
            } else {
              acc_t acc = 0;
              for (int64_t i = g * n; i < (g + 1) * n; ++i) {
                const acc_t li = static_cast<acc_t>(l[i]);
                const acc_t gi = go[i * access.stride] * scale;
                gl[i] = static_cast<scalar_t>(gi * bernoulli_kl_grad_logit(li, u[g]));
                acc += gi * bernoulli_kl_grad_target(li, u[g]);
              }
              gt[g] = acc;
            }
          }
        });
      });
  kl_check_target_range(target_in_range);
  return {grad_logits.view(logits.sizes()), grad_target.to(target.scalar_type()).view(target.sizes())};
}

}  // namespace

TORCH_LIBRARY_IMPL(batchgan, CPU, m) {
  register_bernoulli_kl_loss<&bernoulli_kl_loss_cpu, &bernoulli_kl_loss_backward_cpu, c10::DeviceType::CPU>(
      m, Registration::kImpl);
}

}  // namespace batchgan
