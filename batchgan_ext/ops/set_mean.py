"""``torch.ops.batchgan.set_mean``: the permutation-invariant reduction (BGAN paper, eq. 10-11).
Kernels in csrc/ops/equivariant."""

import torch

from ._common import check_int

__all__ = ["set_mean"]


def set_mean(x: torch.Tensor, num_sets: int = 1) -> torch.Tensor:
    """Mean over each of the ``num_sets`` sets of consecutive samples: (N, ...) -> (num_sets, ...).
    The permutation-invariant reduction of eq. 10 (rho of eq. 11), accumulated in float32+."""
    return torch.ops.batchgan.set_mean(x, check_int(num_sets, "num_sets", minimum=None))
