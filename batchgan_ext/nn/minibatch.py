"""nn.Module wrappers of the batch-level discriminator features."""

import math

import torch
from torch import nn

from ..ops import minibatch_stddev, pairwise_l1_features
from ..ops._common import check_bool, check_int, check_optional_int, check_real

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
    - ``set_size``: instead of ``num_sets``, sets of this many samples (the set count then follows
      the batch: N / set_size), so that one module serves batches of any multiple of it.
    - ``bias``: improved-gan's learned per-feature offset ``b`` (initialised to -1 as there),
      added to o.
    - ``num_populations``: with ``split`` labels passed to forward, one feature per population
      (improved-gan's ImageNet model): the output then has ``num_populations * out_features``
      extra columns, population-major. Build with ``num_populations=2`` for real/fake.
    - ``init_std``: standard deviation of T's normal init (1.0: torchgan's and the gist's).

    improved-gan's own layer (``MinibatchLayer`` in mnist_svhn_cifar10/nn.py) is small at init,
    rescaled from data and offset by a learned bias. Its recipe here::

        mbd = MinibatchDiscrimination(in_features, out_features, kernel_dims, bias=True, init_std=0.05)
        mbd.init_from_batch(first_batch_features)  # once, before training, on real data's features

    (improved-gan: ``kernel_dims=5``, ``out_features=100``, init on 500 training images).
    See :meth:`init_from_batch` for what the data-dependent init does.
    """

    spanning_sets = None  # sets across processes: batchgan_ext.distributed.convert_spanning_sets

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
        init_std: float = 1.0,
        set_size: int | None = None,
    ):
        super().__init__()
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        self.kernel_dims = check_int(kernel_dims, "kernel_dims")
        self.mean = check_bool(mean, "mean")
        self.exclude_self = check_bool(exclude_self, "exclude_self")
        self.num_sets = check_int(num_sets, "num_sets")
        self.set_size = check_optional_int(set_size, "set_size")
        if self.set_size is not None and self.num_sets != 1:
            raise ValueError("set_size, num_sets: give at most one of them (samples per set, or number of sets)")
        bias = check_bool(bias, "bias")
        self.num_populations = check_optional_int(num_populations, "num_populations")
        init_std = check_real(init_std, "init_std")
        if not (math.isfinite(init_std) and init_std > 0):
            raise ValueError(f"init_std: expected a finite value > 0, got {init_std!r}")
        self.init_std = init_std
        self.T = nn.Parameter(torch.empty(self.in_features, self.out_features, self.kernel_dims))
        feats = self.out_features * (self.num_populations or 1)
        self.bias = nn.Parameter(torch.empty(feats)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.T, 0.0, self.init_std)
        if self.bias is not None:
            nn.init.constant_(self.bias, -1.0)

    @property
    def output_features(self) -> int:
        return self.in_features + self.out_features * (self.num_populations or 1)

    def _check_input(self, x: torch.Tensor, split: torch.Tensor | None) -> None:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x: expected shape (N, {self.in_features}), got {tuple(x.shape)}")
        if (split is None) != (self.num_populations is None):
            raise ValueError("split: pass population labels exactly when the module was built with num_populations")

    def _num_sets_for(self, n: int) -> int:
        if self.set_size is None:
            if n % self.num_sets != 0:
                raise ValueError(f"num_sets: the batch of {n} samples does not split into {self.num_sets} sets")
            return self.num_sets
        if n == 0 or n % self.set_size != 0:
            raise ValueError(f"set_size: the batch of {n} samples does not split into sets of {self.set_size}")
        return n // self.set_size

    def _features(self, x: torch.Tensor, split: torch.Tensor | None) -> torch.Tensor:
        """o before the bias, (N, out_features * (num_populations or 1))."""
        M = (x @ self.T.view(self.in_features, -1)).view(x.shape[0], self.out_features, self.kernel_dims)
        if self.spanning_sets is not None:  # sets across processes: batchgan_ext.distributed
            return self.spanning_sets.pairwise_l1_features(M, self.exclude_self, self.mean).flatten(1)
        num_sets = self.num_sets if self.set_size is None else self._num_sets_for(x.shape[0])
        o = pairwise_l1_features(M, num_sets, self.exclude_self, self.mean, split, self.num_populations)
        return o.flatten(1)

    def forward(self, x: torch.Tensor, split: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, split)
        o = self._features(x, split)
        if self.bias is not None:
            o = o + self.bias
        return torch.cat([x, o], 1)

    @torch.no_grad()
    def init_from_batch(self, x: torch.Tensor, split: torch.Tensor | None = None) -> None:
        """improved-gan's data-dependent init (``MinibatchLayer(init=True)``), from a batch x of (N, in_features).

        For each kernel b, ``d_b = 0.5 * mean_i min_{j != i} ||M[i, b] - M[j, b]||_1`` with j over the
        other samples of i's set (``num_sets``; every set needs at least 2 samples); ``T[:, b, :]`` is
        divided by ``d_b``, so that on this batch each sample's nearest neighbour is at L1 distance 2 on
        average and ``c_b = exp(-distance)`` starts neither saturated at 0 nor flat at 1. Then, with
        ``bias=True``, ``bias = -mean_i o_i``: the features o as this module computes them (with its
        ``mean``, ``exclude_self``, ``num_sets``; with ``num_populations``, pass ``split`` and each
        population's features get their own offset; the distances above ignore ``split``) are centred on
        this batch, as improved-gan's ``b = -mean(f)``. The distances are computed once here, one kernel
        at a time with ``torch.cdist`` in float64 (and the check below reads them on the host); the
        forward keeps the fused op.

        Differences from improved-gan: there, ``W = theta * exp(s) / ||theta||`` (weight normalisation
        per (kernel, dim) column, ``s`` the learned log-scale the init writes); here T is one plain
        parameter (the torchgan/gist state_dict), so its columns keep their random norms and the init
        rescales T itself. Since the init divides out T's scale, ``init_std`` does not change the
        module's output after it, only the magnitude of T that the optimiser then updates.
        Raises ValueError if a kernel's distance ``d_b`` is 0 or not finite (samples that coincide under
        that kernel, or inf/NaN input).
        """
        self._check_input(x, split)
        n, k = x.shape[0], self.out_features
        num_sets = self._num_sets_for(n)
        set_size = n // num_sets
        if set_size < 2:
            raise ValueError(
                f"x: the data-dependent init needs at least 2 samples per set (a nearest other sample), got a batch "
                f"of {n} in {num_sets} sets"
            )
        M = (x.double() @ self.T.double().view(self.in_features, -1)).view(num_sets, set_size, k, -1)
        half_mean_min = torch.empty(k, dtype=torch.float64, device=x.device)
        for b in range(k):  # one kernel at a time: (num_sets, set_size, set_size) distances, not B times that
            dist = torch.cdist(M[:, :, b], M[:, :, b], p=1)
            dist.diagonal(dim1=-2, dim2=-1).fill_(math.inf)  # j != i (improved-gan adds 1e6 to the diagonal)
            half_mean_min[b] = 0.5 * dist.amin(-1).mean()
        bad = ~(torch.isfinite(half_mean_min) & (half_mean_min > 0))
        if bad.any():
            kernels = bad.nonzero().flatten().tolist()
            raise ValueError(
                f"x: kernels {kernels} have a mean nearest-neighbour L1 distance of 0 or a non-finite one on this "
                "batch (coinciding samples, or inf/NaN input): cannot rescale T from it"
            )
        self.T.div_(half_mean_min.to(self.T.dtype).view(1, k, 1))
        if self.bias is not None:
            self.bias.copy_(-self._features(x, split).mean(0))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, kernel_dims={self.kernel_dims}, "
            f"mean={self.mean}, exclude_self={self.exclude_self}, "
            + (f"set_size={self.set_size}, " if self.set_size is not None else f"num_sets={self.num_sets}, ")
            + f"bias={self.bias is not None}, num_populations={self.num_populations}"
            + (f", init_std={self.init_std}" if self.init_std != 1.0 else "")
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
