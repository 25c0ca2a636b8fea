"""Permutation-equivariant layers (BGAN paper, section 4, eq. 10-12).

The kernels are ``torch.ops.batchgan.equivariant_conv2d``, ``equivariant_linear`` and
``set_mean`` (csrc/ops/equivariant); this module registers their fake kernels (shape inference
for torch.compile) and wraps them for users. All the math runs in the ops: the products in the
backend (oneDNN / BLAS / cuDNN), the Gamma branch on the G set means only, and bias + broadcast
+ activation in one fused pass.

Autograd is registered in C++ (csrc/ops/equivariant/autograd/equivariant_autograd.cpp), as for
``mix`` and ``bernoulli_kl_loss``: a Python formula cost ~80-110 us per forward+backward. Only
the gradients autograd needs are computed (the backward ops' ``output_mask``). ``set_mean`` is
differentiable to any order; under ``create_graph=True`` (a gradient penalty) the layers'
autograd composes the backward from differentiable ops, so double backward is exact too.
"""

from typing import Optional, Sequence, Tuple, Union

import torch
from torch._prims_common import suggest_memory_format

__all__ = ["equivariant_conv2d", "equivariant_linear", "set_mean", "ACTIVATIONS"]

ACTIVATIONS = ("identity", "relu", "leaky_relu")

_IntOrPair = Union[int, Sequence[int]]


def _pair(v: _IntOrPair, name: str) -> Tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    v = tuple(v)
    if len(v) != 2 or not all(isinstance(e, int) and not isinstance(e, bool) for e in v):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
    return v


def _check_num_sets(n, num_sets):
    torch._check(n > 0, lambda: "x: expected a non-empty batch, got 0 samples")
    torch._check(num_sets >= 1, lambda: f"num_sets: expected a positive number of sets, got {num_sets}")
    torch._check(n % num_sets == 0, lambda: f"num_sets: the batch of {n} samples does not split into {num_sets} equal sets")


def _check_params(x, weight, weight_gamma, bias, weight_dim):
    for name, t in (("weight", weight), ("weight_gamma", weight_gamma), ("bias", bias)):
        if t is None:
            continue
        torch._check(t.dtype == x.dtype, lambda: f"{name}: expected the dtype of x ({x.dtype}), got {t.dtype}")
        torch._check(t.device == x.device, lambda: f"{name}: expected a tensor on the same device as x ({x.device})")
    torch._check(weight.dim() == weight_dim, lambda: f"weight: expected a {weight_dim}-d tensor, got {tuple(weight.shape)}")
    torch._check(weight.shape[1] == x.shape[1], lambda: f"weight: expected {x.shape[1]} input channels/features")
    torch._check(weight_gamma.shape == weight.shape, lambda: f"weight_gamma: expected the shape of weight {tuple(weight.shape)}")
    if bias is not None:
        torch._check(bias.dim() == 1 and bias.shape[0] == weight.shape[0], lambda: f"bias: expected shape ({weight.shape[0]},)")


def _conv_out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


# --------------------------------------------------------------------------------------------
# fake kernels


@torch.library.register_fake("batchgan::equivariant_conv2d")
def _equivariant_conv2d_fake(x, weight, weight_gamma, bias, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                             num_sets=1, activation="identity", negative_slope=0.01):
    torch._check(activation in ACTIVATIONS, lambda: f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    torch._check(x.dim() == 4, lambda: f"x: expected a 4-d batch (N, C, H, W), got shape {tuple(x.shape)}")
    _check_params(x, weight, weight_gamma, bias, 4)
    _check_num_sets(x.shape[0], num_sets)
    ho = _conv_out_size(x.shape[2], weight.shape[2], stride[0], padding[0], dilation[0])
    wo = _conv_out_size(x.shape[3], weight.shape[3], stride[1], padding[1], dilation[1])
    return torch.empty((x.shape[0], weight.shape[0], ho, wo), dtype=x.dtype, device=x.device,
                       memory_format=suggest_memory_format(x))


@torch.library.register_fake("batchgan::_equivariant_conv2d_forward")
def _equivariant_conv2d_forward_fake(x, weight, weight_gamma, bias, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                                     num_sets=1, activation="identity", negative_slope=0.01):
    out = _equivariant_conv2d_fake(x, weight, weight_gamma, bias, stride, padding, dilation, num_sets, activation,
                                   negative_slope)
    return out, _set_mean_fake(x, num_sets)


def _grads_fake(x, weight, weight_gamma, has_bias, output_mask):
    def maybe(flag, like, fmt=torch.contiguous_format):
        if not flag:
            return x.new_empty((0,))
        return torch.empty(like.shape, dtype=x.dtype, device=x.device, memory_format=fmt)

    bias_shape = x.new_empty((weight.shape[0],))
    return (
        maybe(output_mask[0], x, suggest_memory_format(x)),
        maybe(output_mask[1], weight),
        maybe(output_mask[2], weight),
        maybe(output_mask[3] and has_bias, bias_shape),
    )


@torch.library.register_fake("batchgan::_equivariant_conv2d_backward")
def _equivariant_conv2d_backward_fake(grad, out, x, x_mean, weight, weight_gamma, has_bias, stride, padding, dilation,
                                      num_sets, activation, negative_slope, output_mask):
    return _grads_fake(x, weight, weight_gamma, has_bias, output_mask)


@torch.library.register_fake("batchgan::equivariant_linear")
def _equivariant_linear_fake(x, weight, weight_gamma, bias, num_sets=1, activation="identity", negative_slope=0.01):
    torch._check(activation in ACTIVATIONS, lambda: f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    torch._check(x.dim() == 2, lambda: f"x: expected a 2-d batch (N, features), got shape {tuple(x.shape)}")
    _check_params(x, weight, weight_gamma, bias, 2)
    _check_num_sets(x.shape[0], num_sets)
    return x.new_empty((x.shape[0], weight.shape[0]))


@torch.library.register_fake("batchgan::_equivariant_linear_forward")
def _equivariant_linear_forward_fake(x, weight, weight_gamma, bias, num_sets=1, activation="identity",
                                     negative_slope=0.01):
    out = _equivariant_linear_fake(x, weight, weight_gamma, bias, num_sets, activation, negative_slope)
    return out, _set_mean_fake(x, num_sets)


@torch.library.register_fake("batchgan::_equivariant_linear_backward")
def _equivariant_linear_backward_fake(grad, out, x, x_mean, weight, weight_gamma, has_bias, num_sets, activation,
                                      negative_slope, output_mask):
    return _grads_fake(x, weight, weight_gamma, has_bias, output_mask)


@torch.library.register_fake("batchgan::set_mean")
def _set_mean_fake(x, num_sets=1):
    torch._check(x.dim() >= 1, lambda: "x: expected a batch with the batch dimension first, got a 0-d tensor")
    _check_num_sets(x.shape[0], num_sets)
    return torch.empty((num_sets,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device,
                       memory_format=suggest_memory_format(x))


@torch.library.register_fake("batchgan::_set_mean_backward")
def _set_mean_backward_fake(grad, batch):
    torch._check(batch > 0 and batch % grad.shape[0] == 0, lambda: f"batch: expected a multiple of {grad.shape[0]}")
    return torch.empty((batch,) + tuple(grad.shape[1:]), dtype=grad.dtype, device=grad.device,
                       memory_format=suggest_memory_format(grad))


# --------------------------------------------------------------------------------------------
# functional


def equivariant_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_gamma: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: _IntOrPair = 1,
    padding: _IntOrPair = 0,
    dilation: _IntOrPair = 1,
    num_sets: int = 1,
    activation: str = "identity",
    negative_slope: float = 0.01,
) -> torch.Tensor:
    """Permutation-equivariant convolution (BGAN paper, eq. 12):
    ``y_b = act(bias + conv(x_b, weight) + conv(mean of b's set, weight_gamma))``.

    ``x``: (N, C_in, H, W), N = ``num_sets`` sets of N/num_sets consecutive samples, each set with
    its own mean (``num_sets`` counts sets, not nn.Conv2d's channel num_sets). ``weight`` (Lambda)
    and ``weight_gamma`` (Gamma): (C_out, C_in, kh, kw); ``stride``/``padding``/``dilation`` as
    in :func:`torch.nn.functional.conv2d`. ``activation``: 'identity', 'relu' or 'leaky_relu'
    (``negative_slope`` >= 0). float32/float64/float16/bfloat16; channels_last stays channels_last.
    """
    return torch.ops.batchgan.equivariant_conv2d(
        x, weight, weight_gamma, bias, _pair(stride, "stride"), _pair(padding, "padding"),
        _pair(dilation, "dilation"), num_sets, activation, float(negative_slope),
    )


def equivariant_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_gamma: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    num_sets: int = 1,
    activation: str = "identity",
    negative_slope: float = 0.01,
) -> torch.Tensor:
    """Permutation-equivariant linear layer (BGAN paper, eq. 12) on x of shape (N, in_features):
    ``y_b = act(bias + x_b weight^T + (mean of b's set) weight_gamma^T)``; weights
    (out_features, in_features). ``num_sets``, ``activation`` as in :func:`equivariant_conv2d`."""
    return torch.ops.batchgan.equivariant_linear(x, weight, weight_gamma, bias, num_sets, activation,
                                                 float(negative_slope))


def set_mean(x: torch.Tensor, num_sets: int = 1) -> torch.Tensor:
    """Mean over each of the ``num_sets`` sets of consecutive samples: (N, ...) -> (num_sets, ...).
    The permutation-invariant reduction of eq. 10 (rho of eq. 11), accumulated in float32+."""
    return torch.ops.batchgan.set_mean(x, num_sets)
