"""PacGAN packing (Lin et al. 2018, "PacGAN: the power of two samples in generative adversarial
networks", section 3): the discriminator judges ``packing`` samples at once, concatenated."""

import torch
from torch import nn

from ..ops._common import check_int

__all__ = ["Pack", "pack"]


def pack(x: torch.Tensor, packing: int) -> torch.Tensor:
    """Packs ``packing`` consecutive samples into one: (N, C, *rest) -> (N // packing, packing * C, *rest).

    Packed sample i is ``torch.cat([x[i*m], x[i*m + 1], ..., x[i*m + m-1]], dim=0)`` (m = ``packing``)
    along the feature/channel dimension: (N, F) vectors become (N/m, m*F), images are concatenated
    channel-wise, as PacGAN's code does (its discriminator's input has ``m * x_dim`` features and its
    DCGAN concatenates the m generated images along channels). PacGAN packs m independent draws; with
    i.i.d. batches, grouping consecutive samples is the same thing, and it makes packing a reshape:
    a view of ``x`` whenever its strides allow one (always for a contiguous batch), a copy otherwise.

    Pack real and fake batches separately (each packed sample is all real or all fake), e.g.
    ``D(pack(real, m))`` and ``D(pack(G(z), m))`` with D built for ``m * C`` input channels.
    ``packing=1`` returns ``x`` reshaped to itself.
    """
    packing = check_int(packing, "packing")
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x: expected a tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x: expected a batch of shape (N, C, ...) with at least 2 dims, got shape {tuple(x.shape)}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("x: expected a non-empty batch, got 0 samples")
    if n % packing != 0:
        raise ValueError(f"packing: the batch of N={n} samples does not split into packs of packing={packing}")
    # Row-major: x[i*m + j, c, ...] lands at [i, j*C + c, ...], i.e. sample j of the pack in the j-th block of C.
    return x.reshape(n // packing, packing * x.shape[1], *x.shape[2:])


class Pack(nn.Module):
    """:func:`pack` as a module, e.g. the first layer of ``nn.Sequential(Pack(m), nn.Linear(m * F, H), ...)``."""

    def __init__(self, packing: int):
        super().__init__()
        self.packing = check_int(packing, "packing")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pack(x, self.packing)

    def extra_repr(self) -> str:
        return f"packing={self.packing}"
