"""``torch.ops.batchgan.pairwise_l1_features``: minibatch discrimination (Salimans et al. 2016,
section 3.2). Kernels in csrc/ops/pairwise_l1_features (autograd in C++)."""

import torch

from ._common import check_bool, check_int, check_optional_int

__all__ = ["pairwise_l1_features"]


def pairwise_l1_features(
    M: torch.Tensor,
    num_sets: int = 1,
    exclude_self: bool = True,
    mean: bool = False,
    split: torch.Tensor | None = None,
    num_populations: int | None = None,
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

    inf/NaN: every term inside the sum is computed as written, so exp(-inf) = 0 (a sample with an
    inf far from the others), and a pair with a NaN, or with infs of one sign in the same dim,
    gives NaN; that includes the j = i term of an inf/NaN sample when ``exclude_self=False``.
    Terms outside the sum (other sets, other populations, j = i with ``exclude_self``) never
    contribute, whatever their value: an inf sample's own feature stays finite with
    ``exclude_self``.

    Gradient: ``-sum_j sign(M_i - M_j) c_b(i, j) (g_i + g_j)`` from the same pairwise terms,
    with sign(0) = 0 (torch.abs's convention), so coinciding samples contribute nothing.
    """
    num_sets = check_int(num_sets, "num_sets", minimum=None)
    exclude_self = check_bool(exclude_self, "exclude_self")
    mean = check_bool(mean, "mean")
    num_populations = check_optional_int(num_populations, "num_populations", minimum=None)
    if split is None:
        if num_populations not in (None, 1):
            raise ValueError(f"num_populations: expected None or 1 when split is None, got {num_populations!r}")
        num_populations = 1
    elif num_populations is None:
        num_populations = 2
    return torch.ops.batchgan.pairwise_l1_features(M, num_sets, exclude_self, mean, split, num_populations)
