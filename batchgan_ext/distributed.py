"""Batch discriminators across processes (torch.distributed): the two layouts of a data-parallel batch GAN.

(a) Sets local to a rank (the default): each rank holds whole sets, so every set statistic (eq. 10-11's
    mean, the mixing target, the pairwise minibatch features) is computed where its samples are, with no
    extra communication; DistributedDataParallel averages the gradients as for any model.
    :func:`check_local_sets` is the check the trainer makes: a per-rank batch that does not hold whole
    sets is refused.
(b) Sets spanning ranks: the global batch is the ranks' batches concatenated in rank order and cut into
    sets of ``set_size`` consecutive samples, so a set may have samples on several ranks (e.g. a per-rank
    batch smaller than a set, or sizes that do not divide). :func:`convert_spanning_sets` switches a
    discriminator's set layers to collectives, as ``nn.SyncBatchNorm`` does for batch norm:

    - ``EquivariantLinear`` / ``EquivariantConv2d`` (eq. 12) and ``SetMean`` (eq. 10): each rank sums its
      samples per set, one ``all_reduce`` gives every set's mean on every rank (volume: sets x features);
      the backward all-reduces the gradient of the means the same way (what SyncBatchNorm does with its
      statistics). The Lambda product stays local.
    - ``MinibatchDiscrimination``: each sample is compared with every other sample of its set, so the
      ranks all-gather M (volume: global batch x kernels x dims), compute the package's fused
      ``pairwise_l1_features`` on the sets they hold samples of, and the backward all-reduces the
      gradient of the gathered M, each rank keeping the rows it owns.

    In this layout the fused equivariant kernels cannot be used as they are (they take each set's mean
    from the batch they are given), so the layer is composed of ATen's product, the synced mean and the
    broadcast Gamma term; the results equal the single-process layer on the concatenated batch (tested
    to 1e-10 in float64 with 2 and 3 processes, sets split unevenly).

Every rank must run the same forward and backward calls in the same order (the collectives pair up),
as with SyncBatchNorm. The per-rank batch sizes are all-gathered at each forward unless ``rank_sizes``
fixes them (on NCCL the gathered sizes are read on the host: pass ``rank_sizes`` to avoid that sync).
Collectives are torch.distributed's: gloo on CPU, NCCL on GPUs.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .nn.equivariant import EquivariantConv2d, EquivariantLinear, SetBatchNorm, SetMean
from .nn.minibatch import MinibatchDiscrimination
from .ops import pairwise_l1_features
from .ops._common import check_int

__all__ = ["SpanningSets", "check_local_sets", "convert_spanning_sets", "spanning_set_mean"]


def check_local_sets(batch_size: int, set_size: int, name: str = "batch_size") -> None:
    """Layout (a): a rank's batch of ``batch_size`` samples must hold whole sets of ``set_size``."""
    batch_size, set_size = check_int(batch_size, name), check_int(set_size, "set_size")
    if batch_size % set_size != 0:
        raise ValueError(
            f"{name}: the per-rank batch of {batch_size} samples does not hold whole sets of {set_size}; with sets "
            "local to each rank (the default layout) every rank must hold whole sets: give a per-rank batch that "
            "is a multiple of set_size, or convert the discriminator with convert_spanning_sets"
        )


def _world(group) -> tuple[int, int]:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("torch.distributed: spanning sets need an initialised process group (init_process_group)")
    return dist.get_rank(group), dist.get_world_size(group)


class SpanningSets:
    """Layout (b): sets of ``set_size`` consecutive samples of the global batch (the ranks' batches in rank
    order), over the process ``group`` (default: the world). ``rank_sizes`` fixes every rank's batch size
    (no gather of the sizes at each forward)."""

    def __init__(self, set_size: int, group=None, rank_sizes: list[int] | None = None):
        self.set_size = check_int(set_size, "set_size")
        self.group = group
        if rank_sizes is not None:
            rank_sizes = [check_int(n, "rank_sizes", minimum=0) for n in rank_sizes]
            if sum(rank_sizes) % self.set_size != 0:
                raise ValueError(
                    f"rank_sizes: the global batch of {sum(rank_sizes)} samples does not split into sets of "
                    f"{self.set_size}"
                )
        self.rank_sizes = rank_sizes

    def __repr__(self) -> str:
        return f"SpanningSets(set_size={self.set_size}" + (
            f", rank_sizes={self.rank_sizes})" if self.rank_sizes else ")"
        )

    def layout(self, x: torch.Tensor) -> tuple[list[int], int]:
        """(every rank's batch size, this rank's offset in the global batch), checked."""
        rank, world = _world(self.group)
        n = x.shape[0]
        if self.rank_sizes is not None:
            if len(self.rank_sizes) != world:
                raise ValueError(f"rank_sizes: expected {world} sizes (one per rank), got {len(self.rank_sizes)}")
            if self.rank_sizes[rank] != n:
                raise ValueError(f"x: rank {rank} was declared {self.rank_sizes[rank]} samples, got {n}")
            sizes = self.rank_sizes
        else:
            local = torch.tensor([n], dtype=torch.int64, device=x.device)
            gathered = [torch.empty_like(local) for _ in range(world)]
            dist.all_gather(gathered, local, group=self.group)
            sizes = [int(t) for t in gathered]
        if 0 in sizes:  # raised on every rank alike (the sizes are known to all), so no rank waits for another
            raise ValueError(
                f"x: rank {sizes.index(0)} holds no samples (ranks: {sizes}); with spanning sets every rank must hold "
                "at least one sample (its collectives would pair with no computation)"
            )
        total = sum(sizes)
        if total % self.set_size != 0:
            raise ValueError(
                f"set_size: the global batch of {total} samples (ranks: {sizes}) does not split into sets of "
                f"{self.set_size}"
            )
        return sizes, sum(sizes[:rank])

    def _set_index(self, n: int, offset: int, device) -> torch.Tensor:
        return torch.div(torch.arange(offset, offset + n, device=device), self.set_size, rounding_mode="floor")

    # -------------------------------------------------------------------------------------------
    # the set means (eq. 10-11) and the layers built on them

    def set_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Every global set's mean, (num_sets, ...), the same on every rank."""
        sizes, offset = self.layout(x)
        num_sets = sum(sizes) // self.set_size
        return _SpanningSetMean.apply(x, self._set_index(x.shape[0], offset, x.device), num_sets, self)

    def equivariant(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """eq. 12 with rho the mean of the global set: act(bias + Lambda x_b + Gamma rho(set of b))."""
        sizes, offset = self.layout(x)
        set_index = self._set_index(x.shape[0], offset, x.device)
        rho = _SpanningSetMean.apply(x, set_index, sum(sizes) // self.set_size, self)
        if isinstance(layer, EquivariantConv2d):
            conv = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
            y = (
                F.conv2d(x, layer.weight, layer.bias, **conv)
                + F.conv2d(rho, layer.weight_gamma, None, **conv)[set_index]
            )
        else:
            y = F.linear(x, layer.weight, layer.bias) + F.linear(rho, layer.weight_gamma)[set_index]
        if layer.activation == "relu":
            return F.relu(y)
        if layer.activation == "leaky_relu":
            return F.leaky_relu(y, layer.negative_slope)
        return y

    def pairwise_l1_features(self, M: torch.Tensor, exclude_self: bool, mean: bool) -> torch.Tensor:
        """``pairwise_l1_features`` of this rank's rows of M (N, B, C), each compared with its global set."""
        sizes, offset = self.layout(M)
        n = M.shape[0]
        gathered = _AllGatherRows.apply(M, sizes, self.group)
        first_set, last_set = offset // self.set_size, (offset + n - 1) // self.set_size
        start = first_set * self.set_size
        sets = gathered[start : (last_set + 1) * self.set_size]
        o = pairwise_l1_features(sets, last_set - first_set + 1, exclude_self, mean)
        return o[offset - start : offset - start + n]


class _SpanningSetMean(torch.autograd.Function):
    """Per-set sums all-reduced over the ranks; backward: the gradient of the means all-reduced, each
    sample receiving its set's gradient over the set size (the mean's derivative)."""

    @staticmethod
    def forward(ctx, x, set_index, num_sets, layout: SpanningSets):
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        sums = x.new_zeros((num_sets, *x.shape[1:]), dtype=acc).index_add_(0, set_index, x.to(acc))
        dist.all_reduce(sums, group=layout.group)
        ctx.save_for_backward(set_index)
        ctx.layout, ctx.dtype = layout, x.dtype
        return (sums / layout.set_size).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_mean):
        (set_index,) = ctx.saved_tensors
        acc = torch.float64 if grad_mean.dtype == torch.float64 else torch.float32
        total = grad_mean.to(acc, copy=True).contiguous()  # a copy: all_reduce writes in place
        dist.all_reduce(total, group=ctx.layout.group)
        return (total / ctx.layout.set_size)[set_index].to(ctx.dtype), None, None, None


class _AllGatherRows(torch.autograd.Function):
    """The ranks' row blocks (sizes may differ) concatenated in rank order; backward: the gradient of
    the concatenation summed over the ranks (all_reduce: gloo has no reduce_scatter), this rank's rows."""

    @staticmethod
    def forward(ctx, x, sizes: list[int], group):
        rank = dist.get_rank(group)
        padded = x.new_zeros((max(sizes), *x.shape[1:]))
        padded[: x.shape[0]] = x
        blocks = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(blocks, padded.contiguous(), group=group)
        ctx.sizes, ctx.group, ctx.offset = sizes, group, sum(sizes[:rank])
        return torch.cat([block[:n] for block, n in zip(blocks, sizes)])

    @staticmethod
    def backward(ctx, grad):
        total = grad.contiguous().clone()
        dist.all_reduce(total, group=ctx.group)
        n = ctx.sizes[dist.get_rank(ctx.group)]
        return total[ctx.offset : ctx.offset + n], None, None


def spanning_set_mean(x: torch.Tensor, set_size: int, group=None, rank_sizes: list[int] | None = None):
    """eq. 10 over sets that span ranks (layout (b)): every global set's mean, on every rank. A loss
    computed from all of them on every rank counts each set once per rank; under the all-reduced
    gradients that is world_size times one loss, so divide it by the world size (or use per-sample
    outputs, ``make_equivariant(..., reduce=None)``)."""
    return SpanningSets(set_size, group, rank_sizes).set_mean(x)


_SPANNING_LAYERS = (EquivariantConv2d, EquivariantLinear, SetMean, MinibatchDiscrimination)


def convert_spanning_sets(module: nn.Module, group=None, rank_sizes: list[int] | None = None) -> nn.Module:
    """Layout (b) for ``module``'s set layers, in place (as ``nn.SyncBatchNorm.convert_sync_batchnorm``
    rebuilds batch norms; here the parameters, spectral norms and state_dict keys stay as they are):
    each EquivariantConv2d / EquivariantLinear / SetMean / MinibatchDiscrimination computes its set
    statistics over the global sets of its ``set_size``. Returns ``module``. Layers built with a fixed
    ``num_sets`` (the set count of a global batch is not a rank's), SetBatchNorm and populations
    (``split``) are refused with a ValueError naming the layer."""
    if not isinstance(module, nn.Module):
        raise ValueError(f"module: expected an nn.Module, got {type(module).__name__}")
    found = False
    for name, layer in module.named_modules():
        where = f"module.{name}" if name else "module"
        if isinstance(layer, SetBatchNorm):
            raise ValueError(
                f"{where}: SetBatchNorm's per-set statistics across ranks are not supported; keep sets local to a "
                "rank (layout (a)) or remove the batch norm"
            )
        if not isinstance(layer, _SPANNING_LAYERS):
            continue
        if layer.set_size is None:
            raise ValueError(
                f"{where}: {type(layer).__name__} has no set_size (a fixed num_sets or one whole-batch set); "
                "spanning sets are cut from the global batch by set_size: build the layer with set_size="
            )
        if isinstance(layer, MinibatchDiscrimination) and layer.num_populations is not None:
            raise ValueError(f"{where}: populations (split) are not supported with spanning sets")
        layer.spanning_sets = SpanningSets(layer.set_size, group, rank_sizes)
        found = True
    if not found:
        raise ValueError("module: has no set layer (EquivariantConv2d/Linear, SetMean, MinibatchDiscrimination)")
    return module
