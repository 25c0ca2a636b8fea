"""``torch.ops.batchgan.equivariant_conv2d``: the permutation-equivariant convolution (BGAN paper,
section 4, eq. 12). Kernels in csrc/ops/equivariant (shared with equivariant_linear and set_mean)."""

import torch

from ._common import IntOrPair, check_int, check_real, check_str, pair

__all__ = ["equivariant_conv2d"]


def equivariant_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_gamma: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
    num_sets: int = 1,
    activation: str = "identity",
    negative_slope: float = 0.01,
) -> torch.Tensor:
    """Permutation-equivariant convolution (BGAN paper, eq. 12):
    ``y_b = act(bias + conv(x_b, weight) + conv(mean of b's set, weight_gamma))``.

    ``x``: (N, C_in, H, W), N = ``num_sets`` sets of N/num_sets consecutive samples, each set with
    its own mean. ``weight`` (Lambda) and ``weight_gamma`` (Gamma): (C_out, C_in/groups, kh, kw);
    ``stride``/``padding``/``dilation``/``groups`` (channel groups) as in
    :func:`torch.nn.functional.conv2d`. ``activation``: 'identity', 'relu' or 'leaky_relu'
    (``negative_slope`` >= 0). float32/float64/float16/bfloat16; channels_last stays channels_last.
    """
    return torch.ops.batchgan.equivariant_conv2d(
        x,
        weight,
        weight_gamma,
        bias,
        pair(stride, "stride"),
        pair(padding, "padding"),
        pair(dilation, "dilation"),
        check_int(groups, "groups", minimum=None),
        check_int(num_sets, "num_sets", minimum=None),
        check_str(activation, "activation"),
        check_real(negative_slope, "negative_slope"),
    )
