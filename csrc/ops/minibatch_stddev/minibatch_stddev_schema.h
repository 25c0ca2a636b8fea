// Schemas of the `minibatch_stddev` ops (Karras et al. 2018, section 3; StyleGAN2-ADA's
// MinibatchStdLayer), registered under batchgan:: (minibatch_stddev.cpp) and, for the tests,
// under batchgan_emulated:: with the emulated CUDA kernels.
#pragma once

namespace batchgan {

// cat([x, s], 1): x (N, C, *spatial), s (N, num_channels, *spatial) the per-group mean stddev.
inline constexpr const char* kMinibatchStddevSchema =
    "minibatch_stddev(Tensor x, int group_size=4, int num_channels=1) -> Tensor";
// dL/dx from dL/d(output) (N, C + num_channels, *spatial).
inline constexpr const char* kMinibatchStddevBackwardSchema =
    "_minibatch_stddev_backward(Tensor grad, Tensor x, int group_size, int num_channels) -> Tensor";

}  // namespace batchgan
