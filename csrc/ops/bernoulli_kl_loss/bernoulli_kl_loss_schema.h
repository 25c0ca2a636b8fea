// Schemas of the Bernoulli-KL loss ops, registered under batchgan:: (bernoulli_kl_loss.cpp) and,
// for the tests, under batchgan_emulated:: (cuda/bernoulli_kl_loss_emulated.cpp).
#pragma once

namespace batchgan {

// KL(B(target_g) || B(sigmoid(.))) from logits; mode 'bgan' takes the sigmoid of each set's
// mean logit (eq. 13), 'mbgan' of each logit and averages the losses (eq. 14).
inline constexpr const char* kBernoulliKLLossSchema =
    "bernoulli_kl_loss(Tensor logits, Tensor target, str mode=\"bgan\", int num_sets=1, str reduction=\"mean\") -> "
    "Tensor";
// Gradients of logits and target.
inline constexpr const char* kBernoulliKLLossBackwardSchema =
    "_bernoulli_kl_loss_backward(Tensor grad, Tensor logits, Tensor target, str mode, int num_sets, str reduction) -> "
    "(Tensor, Tensor)";

}  // namespace batchgan
