"""nn.Module wrappers of the batch-level discriminator features."""

import torch
from torch import nn

from ..ops import minibatch_stddev, pairwise_l1_features
from ..ops._common import check_bool, check_int, check_optional_int

__all__ = ["MinibatchDiscrimination", "MinibatchStdDev"]


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, section 3.2): ``forward(x, split=None)``
    returns ``cat([x, o], 1)`` for x of shape (N, in_features).

    A drop-in for torchgan's ``MinibatchDiscrimination1d(in_features, out_features,
    intermediate_features=16)`` and the widely copied gist's ``MinibatchDiscrimination(
    in_features, out_features, kernel_dims, mean=False)``: same positional order, one parameter
    ``T`` of shape (in_features, out_features, kernel_dims) initialised N(0, 1), so their
    state_dicts load (with ``bias=False``, the default). ``M = x @ T`` is a BLAS matmul; the
    pairwise features are the fused :func:`batchgan_ext.pairwise_l1_features` (linear memory).

    - ``mean``, ``exclude_self``, ``num_sets``: as in :func:`pairwise_l1_features` (defaults give
      the gist's and torchgan's ``sum - 1``).
    - ``bias``: improved-gan's learned per-feature offset ``b`` (initialised to -1 as there),
      added to o.
    - ``num_populations``: with ``split`` labels passed to forward, one feature per population
      (improved-gan's ImageNet model): the output then has ``num_populations * out_features``
      extra columns, population-major. Build with ``num_populations=2`` for real/fake.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_dims: int = 16,
        mean: bool = False,
        exclude_self: bool = True,
        num_sets: int = 1,
        bias: bool = False,
        num_populations: int | None = None,
    ):
        super().__init__()
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        self.kernel_dims = check_int(kernel_dims, "kernel_dims")
        self.mean = check_bool(mean, "mean")
        self.exclude_self = check_bool(exclude_self, "exclude_self")
        self.num_sets = check_int(num_sets, "num_sets")
        bias = check_bool(bias, "bias")
        self.num_populations = check_optional_int(num_populations, "num_populations")
        self.T = nn.Parameter(torch.empty(self.in_features, self.out_features, self.kernel_dims))
        feats = self.out_features * (self.num_populations or 1)
        self.bias = nn.Parameter(torch.empty(feats)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.T, 0.0, 1.0)
        if self.bias is not None:
            nn.init.constant_(self.bias, -1.0)

    @property
    def output_features(self) -> int:
        return self.in_features + self.out_features * (self.num_populations or 1)

    def forward(self, x: torch.Tensor, split: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x: expected shape (N, {self.in_features}), got {tuple(x.shape)}")
        if (split is None) != (self.num_populations is None):
            raise ValueError("split: pass population labels exactly when the module was built with num_populations")
        M = (x @ self.T.view(self.in_features, -1)).view(x.shape[0], self.out_features, self.kernel_dims)
        o = pairwise_l1_features(M, self.num_sets, self.exclude_self, self.mean, split, self.num_populations)
        o = o.flatten(1)
        if self.bias is not None:
            o = o + self.bias
        return torch.cat([x, o], 1)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, kernel_dims={self.kernel_dims}, "
            f"mean={self.mean}, exclude_self={self.exclude_self}, num_sets={self.num_sets}, "
            f"bias={self.bias is not None}, num_populations={self.num_populations}"
        )


class MinibatchStdDev(nn.Module):
    """:func:`batchgan_ext.minibatch_stddev` as a module (StyleGAN2-ADA's
    ``MinibatchStdLayer(group_size, num_channels=1)``): appends ``num_channels`` channels."""

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size = check_int(group_size, "group_size")
        self.num_channels = check_int(num_channels, "num_channels")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return minibatch_stddev(x, self.group_size, self.num_channels)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
