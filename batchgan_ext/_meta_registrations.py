"""Fake (meta) kernels of every ``torch.ops.batchgan`` op, as torchvision's
``_meta_registrations.py``: shape, dtype and device inference for torch.compile and
``torch.library.opcheck``, with the same argument checks (and messages) as the C++ kernels.
Imported once by the package's ``__init__``."""

import torch
from torch._prims_common import suggest_memory_format

from .ops._common import ACTIVATIONS, MAX_POPULATIONS

# ---- mix


@torch.library.register_fake("batchgan::mix")
def _mix_fake(real, fake, beta, complement=False):
    torch._check(real.dim() >= 1, lambda: "real: expected a batch of samples with the batch dimension first")
    torch._check(fake.shape == real.shape, lambda: f"fake: expected the shape of real {tuple(real.shape)}")
    torch._check(fake.dtype == real.dtype, lambda: f"fake: expected the dtype of real ({real.dtype})")
    for name, t in (("fake", fake), ("beta", beta)):
        torch._check(
            t.device == real.device,
            lambda: f"{name}: expected a tensor on the same device as real ({real.device}), got one on {t.device}",
        )
    torch._check(
        beta.dim() == 1 and beta.shape[0] == real.shape[0],
        lambda: f"beta: expected a 1-d mask of length {real.shape[0]} (the batch size)",
    )
    shape = (real.shape[0] * (2 if complement else 1),) + tuple(real.shape[1:])
    return torch.empty(shape, dtype=real.dtype, device=real.device, memory_format=suggest_memory_format(real))


@torch.library.register_fake("batchgan::_mix_backward")
def _mix_backward_fake(grad, beta, complement):
    halves = 2 if complement else 1
    shape = (grad.shape[0] // halves,) + tuple(grad.shape[1:])
    fmt = suggest_memory_format(grad)
    return tuple(torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=fmt) for _ in range(2))


# ---- bernoulli_kl_loss


@torch.library.register_fake("batchgan::bernoulli_kl_loss")
def _bernoulli_kl_loss_fake(logits, target, mode="bgan", num_sets=1, reduction="mean"):
    torch._check(mode in ("bgan", "mbgan"), lambda: f"mode: expected 'bgan' or 'mbgan', got {mode!r}")
    torch._check(
        reduction in ("none", "mean", "sum"), lambda: f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}"
    )
    n = logits.shape[0]
    torch._check(
        num_sets >= 1 and n % num_sets == 0,
        lambda: f"num_sets: the batch of {n} samples does not split into {num_sets} sets",
    )
    if reduction != "none":
        return logits.new_empty(())
    return logits.new_empty((num_sets,) if mode == "bgan" else (n,))


@torch.library.register_fake("batchgan::_bernoulli_kl_loss_backward")
def _bernoulli_kl_loss_backward_fake(grad, logits, target, mode, num_sets, reduction):
    return torch.empty_like(logits, memory_format=torch.contiguous_format), torch.empty_like(
        target, memory_format=torch.contiguous_format
    )


# ---- equivariant_conv2d, equivariant_linear, set_mean


def _check_num_sets(n, num_sets):
    torch._check(n > 0, lambda: "x: expected a non-empty batch, got 0 samples")
    torch._check(num_sets >= 1, lambda: f"num_sets: expected a positive number of sets, got {num_sets}")
    torch._check(
        n % num_sets == 0, lambda: f"num_sets: the batch of {n} samples does not split into {num_sets} equal sets"
    )


def _check_params(x, weight, weight_gamma, bias, weight_dim, groups=1):
    for name, t in (("weight", weight), ("weight_gamma", weight_gamma), ("bias", bias)):
        if t is None:
            continue
        torch._check(t.dtype == x.dtype, lambda: f"{name}: expected the dtype of x ({x.dtype}), got {t.dtype}")
        torch._check(t.device == x.device, lambda: f"{name}: expected a tensor on the same device as x ({x.device})")
    torch._check(
        weight.dim() == weight_dim, lambda: f"weight: expected a {weight_dim}-d tensor, got {tuple(weight.shape)}"
    )
    torch._check(
        weight.shape[1] * groups == x.shape[1],
        lambda: (
            f"weight: expected {x.shape[1] // groups} input channels/features" + (" per group" if groups > 1 else "")
        ),
    )
    torch._check(
        weight_gamma.shape == weight.shape, lambda: f"weight_gamma: expected the shape of weight {tuple(weight.shape)}"
    )
    if bias is not None:
        torch._check(
            bias.dim() == 1 and bias.shape[0] == weight.shape[0], lambda: f"bias: expected shape ({weight.shape[0]},)"
        )


def _check_groups(x, weight, groups):
    torch._check(groups >= 1, lambda: f"groups: expected a positive number of channel groups, got {groups}")
    torch._check(
        x.shape[1] % groups == 0,
        lambda: f"groups: the {x.shape[1]} input channels of x do not split into {groups} groups",
    )
    torch._check(
        weight.dim() < 1 or weight.shape[0] % groups == 0,
        lambda: f"groups: the {weight.shape[0]} output channels of weight do not split into {groups} groups",
    )


def _conv_out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@torch.library.register_fake("batchgan::equivariant_conv2d")
def _equivariant_conv2d_fake(
    x,
    weight,
    weight_gamma,
    bias,
    stride=(1, 1),
    padding=(0, 0),
    dilation=(1, 1),
    groups=1,
    num_sets=1,
    activation="identity",
    negative_slope=0.01,
):
    torch._check(activation in ACTIVATIONS, lambda: f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    torch._check(x.dim() == 4, lambda: f"x: expected a 4-d batch (N, C, H, W), got shape {tuple(x.shape)}")
    _check_groups(x, weight, groups)
    _check_params(x, weight, weight_gamma, bias, 4, groups)
    _check_num_sets(x.shape[0], num_sets)
    ho = _conv_out_size(x.shape[2], weight.shape[2], stride[0], padding[0], dilation[0])
    wo = _conv_out_size(x.shape[3], weight.shape[3], stride[1], padding[1], dilation[1])
    return torch.empty(
        (x.shape[0], weight.shape[0], ho, wo), dtype=x.dtype, device=x.device, memory_format=suggest_memory_format(x)
    )


@torch.library.register_fake("batchgan::_equivariant_conv2d_forward")
def _equivariant_conv2d_forward_fake(
    x,
    weight,
    weight_gamma,
    bias,
    stride=(1, 1),
    padding=(0, 0),
    dilation=(1, 1),
    groups=1,
    num_sets=1,
    activation="identity",
    negative_slope=0.01,
):
    out = _equivariant_conv2d_fake(
        x, weight, weight_gamma, bias, stride, padding, dilation, groups, num_sets, activation, negative_slope
    )
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
def _equivariant_conv2d_backward_fake(
    grad,
    out,
    x,
    x_mean,
    weight,
    weight_gamma,
    has_bias,
    stride,
    padding,
    dilation,
    groups,
    num_sets,
    activation,
    negative_slope,
    output_mask,
):
    return _grads_fake(x, weight, weight_gamma, has_bias, output_mask)


@torch.library.register_fake("batchgan::equivariant_linear")
def _equivariant_linear_fake(x, weight, weight_gamma, bias, num_sets=1, activation="identity", negative_slope=0.01):
    torch._check(activation in ACTIVATIONS, lambda: f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    torch._check(x.dim() == 2, lambda: f"x: expected a 2-d batch (N, features), got shape {tuple(x.shape)}")
    _check_params(x, weight, weight_gamma, bias, 2)
    _check_num_sets(x.shape[0], num_sets)
    return x.new_empty((x.shape[0], weight.shape[0]))


@torch.library.register_fake("batchgan::_equivariant_linear_forward")
def _equivariant_linear_forward_fake(
    x, weight, weight_gamma, bias, num_sets=1, activation="identity", negative_slope=0.01
):
    out = _equivariant_linear_fake(x, weight, weight_gamma, bias, num_sets, activation, negative_slope)
    return out, _set_mean_fake(x, num_sets)


@torch.library.register_fake("batchgan::_equivariant_linear_backward")
def _equivariant_linear_backward_fake(
    grad, out, x, x_mean, weight, weight_gamma, has_bias, num_sets, activation, negative_slope, output_mask
):
    return _grads_fake(x, weight, weight_gamma, has_bias, output_mask)


@torch.library.register_fake("batchgan::set_mean")
def _set_mean_fake(x, num_sets=1):
    torch._check(x.dim() >= 1, lambda: "x: expected a batch with the batch dimension first, got a 0-d tensor")
    _check_num_sets(x.shape[0], num_sets)
    return torch.empty(
        (num_sets,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device, memory_format=suggest_memory_format(x)
    )


@torch.library.register_fake("batchgan::_set_mean_backward")
def _set_mean_backward_fake(grad, batch):
    torch._check(batch > 0 and batch % grad.shape[0] == 0, lambda: f"batch: expected a multiple of {grad.shape[0]}")
    return torch.empty(
        (batch,) + tuple(grad.shape[1:]),
        dtype=grad.dtype,
        device=grad.device,
        memory_format=suggest_memory_format(grad),
    )


# ---- pairwise_l1_features, minibatch_stddev


def _check_pairwise_args(M, num_sets, split, num_populations):
    torch._check(M.dim() == 3, lambda: f"M: expected a 3-d tensor (N, B, C), got shape {tuple(M.shape)}")
    torch._check(M.shape[0] > 0, lambda: "M: expected a non-empty batch, got N = 0 samples")
    torch._check(num_sets >= 1, lambda: f"num_sets: expected a positive number of sets, got {num_sets}")
    torch._check(
        M.shape[0] % num_sets == 0,
        lambda: f"num_sets: the batch of {M.shape[0]} samples does not split into {num_sets} equal sets",
    )
    torch._check(
        1 <= num_populations <= MAX_POPULATIONS,
        lambda: f"num_populations: expected a value in [1, {MAX_POPULATIONS}], got {num_populations}",
    )
    torch._check(
        split is not None or num_populations == 1,
        lambda: f"num_populations: expected 1 when split is None (one population), got {num_populations}",
    )
    if split is not None:
        torch._check(
            split.device == M.device,
            lambda: f"split: expected a tensor on the same device as M ({M.device}), got one on {split.device}",
        )
        torch._check(
            split.dim() == 1 and split.shape[0] == M.shape[0],
            lambda: (
                f"split: expected a 1-d tensor of {M.shape[0]} labels (one per sample), got shape {tuple(split.shape)}"
            ),
        )


def _pairwise_out_shape(M, split, num_populations):
    if split is None:
        return (M.shape[0], M.shape[1])
    return (M.shape[0], num_populations, M.shape[1])


@torch.library.register_fake("batchgan::pairwise_l1_features")
def _pairwise_l1_features_fake(M, num_sets=1, exclude_self=True, mean=False, split=None, num_populations=1):
    _check_pairwise_args(M, num_sets, split, num_populations)
    return M.new_empty(_pairwise_out_shape(M, split, num_populations))


@torch.library.register_fake("batchgan::_pairwise_l1_features_backward")
def _pairwise_l1_features_backward_fake(grad, M, num_sets, exclude_self, mean, split, num_populations):
    _check_pairwise_args(M, num_sets, split, num_populations)
    return torch.empty_like(M, memory_format=torch.contiguous_format)


def _stddev_out_shape(x, group_size, num_channels):
    torch._check(
        x.dim() >= 2, lambda: f"x: expected a batch (N, C, *spatial) with at least 2 dims, got shape {tuple(x.shape)}"
    )
    n = x.shape[0]
    torch._check(n > 0, lambda: "x: expected a non-empty batch, got N = 0 samples")
    torch._check(group_size >= 1, lambda: f"group_size: expected a positive group size, got {group_size}")
    torch._check(
        num_channels >= 1, lambda: f"num_channels: expected a positive number of stddev channels, got {num_channels}"
    )
    g = min(group_size, n)
    torch._check(
        n % g == 0,
        lambda: (
            f"group_size: the batch of {n} samples is not divisible by the group size {g} "
            "(N must be a multiple of min(group_size, N))"
        ),
    )
    torch._check(
        x.shape[1] % num_channels == 0,
        lambda: f"num_channels: the {x.shape[1]} channels of x do not split into {num_channels} equal blocks",
    )
    return (n, x.shape[1] + num_channels) + tuple(x.shape[2:])


@torch.library.register_fake("batchgan::minibatch_stddev")
def _minibatch_stddev_fake(x, group_size=4, num_channels=1):
    return x.new_empty(_stddev_out_shape(x, group_size, num_channels))


@torch.library.register_fake("batchgan::_minibatch_stddev_backward")
def _minibatch_stddev_backward_fake(grad, x, group_size, num_channels):
    _stddev_out_shape(x, group_size, num_channels)
    return torch.empty_like(x, memory_format=torch.contiguous_format)
