// Schemas of the permutation-equivariant layer ops (BGAN paper, section 4, eq. 10-12),
// registered under batchgan:: (equivariant.cpp) and, for the tests, under batchgan_emulated::
// with the emulated CUDA kernels (cuda/equivariant_emulated.cpp).
//
// `num_sets` is everywhere the number of sets G the batch of N samples is cut into (N/G
// consecutive samples per set, each set with its own mean); `groups` is nn.Conv2d's channel
// groups, applied to both products (weight and weight_gamma are (C_out, C_in/groups, kh, kw)).
#pragma once

namespace batchgan {

// y_b = act(bias + conv(x_b, weight) + conv(mean of b's set, weight_gamma)), eq. 12.
inline constexpr const char* kEquivariantConv2dSchema =
    "equivariant_conv2d(Tensor x, Tensor weight, Tensor weight_gamma, Tensor? bias, int[2] stride=1, "
    "int[2] padding=0, int[2] dilation=1, int groups=1, int num_sets=1, str activation=\"identity\", "
    "float negative_slope=0.01) -> Tensor";
// The forward the autograd kernel of equivariant_conv2d runs (no autograd of its own, like the
// _backward ops): the output and the set means x_mean (G, C, H, W) of x, which the backward
// needs for the Gamma gradient (saved rather than recomputed: one pass over x less).
inline constexpr const char* kEquivariantConv2dForwardSchema =
    "_equivariant_conv2d_forward(Tensor x, Tensor weight, Tensor weight_gamma, Tensor? bias, int[2] stride=1, "
    "int[2] padding=0, int[2] dilation=1, int groups=1, int num_sets=1, str activation=\"identity\", "
    "float negative_slope=0.01) -> (Tensor, Tensor)";
// Gradients of (x, weight, weight_gamma, bias) from the output gradient, the output (the
// activation's derivative is read off the output) and the saved set means. Outputs not asked
// for in output_mask are empty tensors of shape (0,).
inline constexpr const char* kEquivariantConv2dBackwardSchema =
    "_equivariant_conv2d_backward(Tensor grad, Tensor out, Tensor x, Tensor x_mean, Tensor weight, Tensor "
    "weight_gamma, "
    "bool has_bias, int[2] stride, int[2] padding, int[2] dilation, int groups, int num_sets, str activation, "
    "float negative_slope, bool[4] output_mask) -> (Tensor, Tensor, Tensor, Tensor)";

// y_b = act(bias + x_b weight^T + (mean of b's set) weight_gamma^T), eq. 12 for x of shape (N, F).
inline constexpr const char* kEquivariantLinearSchema =
    "equivariant_linear(Tensor x, Tensor weight, Tensor weight_gamma, Tensor? bias, int num_sets=1, "
    "str activation=\"identity\", float negative_slope=0.01) -> Tensor";
// The forward autograd runs: the output and the set means x_mean (G, F).
inline constexpr const char* kEquivariantLinearForwardSchema =
    "_equivariant_linear_forward(Tensor x, Tensor weight, Tensor weight_gamma, Tensor? bias, int num_sets=1, "
    "str activation=\"identity\", float negative_slope=0.01) -> (Tensor, Tensor)";
inline constexpr const char* kEquivariantLinearBackwardSchema =
    "_equivariant_linear_backward(Tensor grad, Tensor out, Tensor x, Tensor x_mean, Tensor weight, Tensor "
    "weight_gamma, "
    "bool has_bias, int num_sets, str activation, float negative_slope, bool[4] output_mask) "
    "-> (Tensor, Tensor, Tensor, Tensor)";

// The invariant reduction rho of eq. 10-11 per set: (N, ...) -> (G, ...).
inline constexpr const char* kSetMeanSchema = "set_mean(Tensor x, int num_sets=1) -> Tensor";
// Its adjoint: (G, ...) -> (batch, ...), each sample of set g gets grad[g] / (batch / G).
inline constexpr const char* kSetMeanBackwardSchema = "_set_mean_backward(Tensor grad, int batch) -> Tensor";

}  // namespace batchgan
