"""``torch.ops.batchgan.equivariant_linear``: the permutation-equivariant linear layer (BGAN paper,
section 4, eq. 12). Kernels in csrc/ops/equivariant."""

import torch

from ._common import check_int, check_real, check_str

__all__ = ["equivariant_linear"]


def equivariant_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_gamma: torch.Tensor,
    bias: torch.Tensor | None = None,
    num_sets: int = 1,
    activation: str = "identity",
    negative_slope: float = 0.01,
) -> torch.Tensor:
    """Permutation-equivariant linear layer (BGAN paper, eq. 12) on x of shape (N, in_features):
    ``y_b = act(bias + x_b weight^T + (mean of b's set) weight_gamma^T)``; weights
    (out_features, in_features). ``num_sets``, ``activation`` as in :func:`equivariant_conv2d`."""
    return torch.ops.batchgan.equivariant_linear(
        x,
        weight,
        weight_gamma,
        bias,
        check_int(num_sets, "num_sets", minimum=None),
        check_str(activation, "activation"),
        check_real(negative_slope, "negative_slope"),
    )
