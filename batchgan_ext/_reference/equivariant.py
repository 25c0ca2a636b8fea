"""Naive pure-PyTorch references of the equivariant layers, written as the paper states them
(BGAN paper, eq. 10-12). They define correctness in the tests; ``*_naive`` is the careful
unfused form the benchmarks compare with."""

import torch.nn.functional as F

__all__ = [
    "set_mean_reference",
    "equivariant_conv2d_reference",
    "equivariant_linear_reference",
    "equivariant_conv2d_naive",
    "equivariant_linear_naive",
    "activation_reference",
]


def activation_reference(z, activation="identity", negative_slope=0.01):
    if activation == "identity":
        return z
    if activation == "relu":
        return F.relu(z)
    if activation == "leaky_relu":
        # Slope 0 is relu: F.leaky_relu would give -inf * 0 = NaN for z = -inf, where the limit
        # (and the kernels) give 0.
        return F.relu(z) if negative_slope == 0 else F.leaky_relu(z, negative_slope)
    raise ValueError(f"activation: unknown {activation!r}")


def set_mean_reference(x, num_sets=1):
    """rho(x) of eq. 11 for each set of N/num_sets consecutive samples."""
    return x.reshape(num_sets, x.shape[0] // num_sets, *x.shape[1:]).mean(dim=1)


def _expanded_mean(x, num_sets):
    # Each sample gets its set's mean: the literal rho(x) of eq. 12, one copy per sample.
    return set_mean_reference(x, num_sets).repeat_interleave(x.shape[0] // num_sets, dim=0)


def equivariant_conv2d_reference(
    x,
    weight,
    weight_gamma,
    bias=None,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    num_sets=1,
    activation="identity",
    negative_slope=0.01,
):
    """Eq. 12 literally: act(bias + x_b * Lambda + rho(x) * Gamma), rho expanded to every sample."""
    z = F.conv2d(x, weight, bias, stride, padding, dilation, groups) + F.conv2d(
        _expanded_mean(x, num_sets), weight_gamma, None, stride, padding, dilation, groups
    )
    return activation_reference(z, activation, negative_slope)


def equivariant_linear_reference(
    x, weight, weight_gamma, bias=None, num_sets=1, activation="identity", negative_slope=0.01
):
    z = F.linear(x, weight, bias) + F.linear(_expanded_mean(x, num_sets), weight_gamma)
    return activation_reference(z, activation, negative_slope)


def equivariant_conv2d_naive(
    x,
    weight,
    weight_gamma,
    bias=None,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    num_sets=1,
    activation="identity",
    negative_slope=0.01,
):
    """The careful unfused form: mean per set, Gamma conv on G images only, broadcast add,
    activation (separate ATen ops)."""
    n = x.shape[0]
    mean = x.reshape(num_sets, n // num_sets, *x.shape[1:]).mean(dim=1)
    main = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    gm = F.conv2d(mean, weight_gamma, None, stride, padding, dilation, groups)
    z = (main.reshape(num_sets, n // num_sets, *main.shape[1:]) + gm.unsqueeze(1)).reshape(main.shape)
    return activation_reference(z, activation, negative_slope)


def equivariant_linear_naive(
    x, weight, weight_gamma, bias=None, num_sets=1, activation="identity", negative_slope=0.01
):
    n = x.shape[0]
    mean = x.reshape(num_sets, n // num_sets, x.shape[1]).mean(dim=1)
    main = F.linear(x, weight, bias)
    gm = F.linear(mean, weight_gamma)
    z = (main.reshape(num_sets, n // num_sets, -1) + gm.unsqueeze(1)).reshape(main.shape)
    return activation_reference(z, activation, negative_slope)
