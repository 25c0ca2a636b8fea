// Schemas of the `mix` ops, registered under batchgan:: (mix.cpp) and, for the tests, under
// batchgan_emulated:: with the emulated CUDA kernels (cuda/mix_emulated.cpp).
#pragma once

namespace batchgan {

// m_b = real_b if beta_b else fake_b, gathered sample by sample. With complement=True the
// output is (2B, ...): the mixed batch, then the batch of the samples it left out.
inline constexpr const char* kMixSchema = "mix(Tensor real, Tensor fake, Tensor beta, bool complement=False) -> Tensor";
// Gradients of real and fake: each output gradient routed back to the one sample it came from.
inline constexpr const char* kMixBackwardSchema =
    "_mix_backward(Tensor grad, Tensor beta, bool complement) -> (Tensor, Tensor)";

}  // namespace batchgan
