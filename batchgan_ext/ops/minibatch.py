"""Batch-level discriminator features: minibatch discrimination (Salimans et al. 2016, section
3.2) and the minibatch standard deviation (Karras et al. 2018, section 3).

The kernels are ``torch.ops.batchgan.pairwise_l1_features`` and
``torch.ops.batchgan.minibatch_stddev`` (csrc/ops/pairwise_l1, csrc/ops/minibatch_stddev),
with their autograd in C++ (the ops' autograd/ folders; ``minibatch_stddev`` supports double
backward, e.g. StyleGAN's R1 penalty; ``pairwise_l1_features`` raises on it); this module
registers their fake kernels (shape inference for torch.compile) and wraps them for users.
"""

from typing import Optional

import torch

__all__ = ["pairwise_l1_features", "minibatch_stddev"]

_MAX_POPULATIONS = 8  # kPairwiseMaxPopulations in pairwise_l1_math.h


# --------------------------------------------------------------------------------------------
# pairwise_l1_features


def _check_pairwise_args(M, num_sets, split, num_populations):
    torch._check(M.dim() == 3, lambda: f"M: expected a 3-d tensor (N, B, C), got shape {tuple(M.shape)}")
    torch._check(M.shape[0] > 0, lambda: "M: expected a non-empty batch, got N = 0 samples")
    torch._check(num_sets >= 1, lambda: f"num_sets: expected a positive number of sets, got {num_sets}")
    torch._check(
        M.shape[0] % num_sets == 0,
        lambda: f"num_sets: the batch of {M.shape[0]} samples does not split into {num_sets} equal sets",
    )
    torch._check(
        1 <= num_populations <= _MAX_POPULATIONS,
        lambda: f"num_populations: expected a value in [1, {_MAX_POPULATIONS}], got {num_populations}",
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
            lambda: f"split: expected a 1-d tensor of {M.shape[0]} labels (one per sample), got shape {tuple(split.shape)}",
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


# Autograd: csrc/ops/pairwise_l1/autograd/pairwise_l1_autograd.cpp.


def pairwise_l1_features(
    M: torch.Tensor,
    num_sets: int = 1,
    exclude_self: bool = True,
    mean: bool = False,
    split: Optional[torch.Tensor] = None,
    num_populations: Optional[int] = None,
) -> torch.Tensor:
    """Minibatch-discrimination features ``o[i, b] = sum_j exp(-||M[i,b] - M[j,b]||_1)``
    (Salimans et al. 2016, section 3.2: ``c_b(x_i, x_j)`` and ``o(x_i)_b``), fused: O(N^2 B C)
    work and O(N B C) memory in both directions, never an N x N x B tensor.

    ``M``: (N, B, C), e.g. ``(x @ T.view(A, B * C)).view(N, B, C)``; float32/64/16, bfloat16
    (accumulation in float32 or better).

    - ``num_sets``: the batch is ``num_sets`` consecutive sets of N/num_sets samples; j runs over
      i's set only.
    - ``exclude_self`` (default True): drop the j = i term, whose value is exactly 1. The gist
      and torchgan's MinibatchDiscrimination1d subtract 1 from the full sum, improved-gan masks
      the diagonal (adds 1e6 to the distance); all three give this value.
      ``exclude_self=False`` is the paper's plain sum over all j.
    - ``mean``: divide by the number of samples that entered the sum (N/num_sets - 1 with
      exclude_self, as the gist's ``mean=True``; N/num_sets without). A set of one sample with
      exclude_self has an empty sum: its feature is 0, with or without mean.
    - ``split``: optional integer population labels of shape (N,) in
      [0, num_populations) (e.g. 0 = real, 1 = fake; ``num_populations`` defaults to 2). The
      output is then (N, num_populations, B): feature p of sample i sums over the samples of
      population p only, as improved-gan's ImageNet discriminator (f1 against the first half of
      the batch, f2 against the second); with ``mean`` each is divided by its own count of
      samples (improved-gan divides by the number of mask entries of its half, one constant per
      half). An empty population gives 0. Without ``split`` the output is (N, B).

    Gradient: ``-sum_j sign(M_i - M_j) c_b(i, j) (g_i + g_j)`` from the same pairwise terms,
    with sign(0) = 0 (torch.abs's convention), so coinciding samples contribute nothing.
    """
    if split is None:
        if num_populations not in (None, 1):
            raise ValueError(f"num_populations: expected None or 1 when split is None, got {num_populations!r}")
        num_populations = 1
    elif num_populations is None:
        num_populations = 2
    return torch.ops.batchgan.pairwise_l1_features(M, num_sets, exclude_self, mean, split, num_populations)


# --------------------------------------------------------------------------------------------
# minibatch_stddev


def _stddev_out_shape(x, group_size, num_channels):
    torch._check(x.dim() >= 2, lambda: f"x: expected a batch (N, C, *spatial) with at least 2 dims, got shape {tuple(x.shape)}")
    n = x.shape[0]
    torch._check(n > 0, lambda: "x: expected a non-empty batch, got N = 0 samples")
    torch._check(group_size >= 1, lambda: f"group_size: expected a positive group size, got {group_size}")
    torch._check(num_channels >= 1, lambda: f"num_channels: expected a positive number of stddev channels, got {num_channels}")
    g = min(group_size, n)
    torch._check(
        n % g == 0,
        lambda: f"group_size: the batch of {n} samples is not divisible by the group size {g} "
        "(N must be a multiple of min(group_size, N))",
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


# Autograd: csrc/ops/minibatch_stddev/autograd/minibatch_stddev_autograd.cpp.


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
    return torch.ops.batchgan.minibatch_stddev(x, group_size, num_channels)
