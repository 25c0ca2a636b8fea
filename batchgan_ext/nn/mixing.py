"""nn.Module wrappers of the mixed-batch ops."""

import torch
from torch import nn

from ..ops import bernoulli_kl_loss, mix, sample_mixing
from ..ops._common import check_bool, check_int, check_real

__all__ = ["MixedBatch", "BernoulliKLLoss"]


class MixedBatch(nn.Module):
    """Builds the discriminator's mixed batch from a real and a fake batch (BGAN, section 3.1).

    ``forward(real, fake, generator=None)`` samples the mixing vector with batch smoothing
    ``gamma`` over ``num_sets`` sets and returns ``(batch, target, beta)``:
      - without complement: ``batch`` is (B, ...), ``target`` (num_sets,);
      - with ``complement=True`` (default): ``batch`` is (2B, ...), the mixed batch followed by
        the batch of the samples it left out, as ``2 * num_sets`` sets, and ``target`` is
        ``cat([t, 1 - t])``, (2 * num_sets,). Feed ``batch`` to a discriminator built with
        ``2 * num_sets`` sets and the loss with ``num_sets=2 * num_sets``.

    Data-parallel training (sets local to each rank): ``shard=(rank, world_size)`` says that
    ``real`` and ``fake`` are shard ``rank`` of ``world_size`` equal shards of a global batch, and
    ``num_sets`` counts this shard's sets. The mixing vector is drawn for the global batch from
    ``generator`` and this shard's part is used, so ranks whose generators are in the same state
    together draw what one process would draw for the global batch.
    """

    def __init__(self, gamma: float = 0.5, num_sets: int = 1, complement: bool = True):
        super().__init__()
        gamma = check_real(gamma, "gamma")
        if not (0.0 <= gamma <= 0.5):
            raise ValueError(f"gamma: expected a value in [0, 0.5], got {gamma!r}")
        self.gamma = gamma
        self.num_sets = check_int(num_sets, "num_sets")
        self.complement = check_bool(complement, "complement")

    @property
    def output_num_sets(self) -> int:
        return self.num_sets * (2 if self.complement else 1)

    def forward(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rank, world = check_shard(shard)
        n = real.shape[0]
        beta, target = sample_mixing(
            n * world, self.num_sets * world, self.gamma, generator=generator, device=real.device
        )
        beta, target = beta[rank * n : (rank + 1) * n], target[rank * self.num_sets : (rank + 1) * self.num_sets]
        target = target.to(real.dtype)
        if not self.complement:
            return mix(real, fake, beta), target, beta
        batch = torch.ops.batchgan.mix(real, fake, beta, True)
        return batch, torch.cat([target, 1 - target]), beta

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, num_sets={self.num_sets}, complement={self.complement}"


def check_shard(shard) -> tuple[int, int]:
    """``(rank, world_size)`` of a data-parallel shard, checked; None is the whole batch, (0, 1)."""
    if shard is None:
        return 0, 1
    if not (isinstance(shard, tuple) and len(shard) == 2):
        raise ValueError(f"shard: expected (rank, world_size), got {shard!r}")
    rank, world = check_int(shard[0], "shard", minimum=0), check_int(shard[1], "shard")
    if rank >= world:
        raise ValueError(f"shard: expected rank < world_size, got rank {rank} of {world}")
    return rank, world


class BernoulliKLLoss(nn.Module):
    """``bernoulli_kl_loss`` as a module: ``forward(logits, target)``."""

    def __init__(self, mode: str = "bgan", num_sets: int = 1, reduction: str = "mean"):
        super().__init__()
        if mode not in ("bgan", "mbgan"):
            raise ValueError(f"mode: expected 'bgan' or 'mbgan', got {mode!r}")
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}")
        self.mode = mode
        self.num_sets = check_int(num_sets, "num_sets")
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bernoulli_kl_loss(logits, target, self.mode, self.num_sets, self.reduction)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, num_sets={self.num_sets}, reduction={self.reduction!r}"
