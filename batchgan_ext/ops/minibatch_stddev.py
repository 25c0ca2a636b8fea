"""``torch.ops.batchgan.minibatch_stddev``: the minibatch standard deviation layer (Karras et al.
2018, section 3; StyleGAN2-ADA's MinibatchStdLayer). Kernels in csrc/ops/minibatch_stddev."""

import torch

from ._common import check_int

__all__ = ["minibatch_stddev"]


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, num_channels: int = 1) -> torch.Tensor:
    """Minibatch standard deviation layer (Karras et al. 2018, section 3), as StyleGAN2-ADA's
    ``MinibatchStdLayer``: returns ``cat([x, s], 1)`` of shape (N, C + num_channels, *spatial).

    ``x``: (N, C, *spatial) (e.g. (N, C, H, W), or (N, C) features). The batch forms
    N / G groups of ``G = min(group_size, N)`` samples taken with a stride (group r holds
    samples r, r + N/G, ...); channels form ``num_channels`` blocks of C / num_channels. For
    each group and block: the biased variance over the group at each channel and position,
    ``sqrt(var + 1e-8)``, averaged over the block's channels and all positions, broadcast to
    every sample of the group and every position. N must be a multiple of G (a clear error,
    not a reshape failure), C a multiple of num_channels.
    """
    return torch.ops.batchgan.minibatch_stddev(
        x, check_int(group_size, "group_size", minimum=None), check_int(num_channels, "num_channels", minimum=None)
    )
