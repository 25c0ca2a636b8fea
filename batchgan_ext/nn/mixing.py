"""nn.Module wrappers of the mixed-batch ops."""

from typing import Optional, Tuple

import torch
from torch import nn

from ..ops.mixing import bernoulli_kl_loss, mix, sample_mixing

__all__ = ["MixedBatch", "BernoulliKLLoss"]


class MixedBatch(nn.Module):
    """Builds the discriminator's mixed batch from a real and a fake batch (BGAN, section 3.1).

    ``forward(real, fake, generator=None)`` samples the mixing vector with batch smoothing
    ``gamma`` over ``groups`` sets and returns ``(batch, target, beta)``:
      - without complement: ``batch`` is (B, ...), ``target`` (groups,);
      - with ``complement=True`` (default): ``batch`` is (2B, ...), the mixed batch followed by
        the batch of the samples it left out, as ``2 * groups`` sets, and ``target`` is
        ``cat([t, 1 - t])``, (2 * groups,). Feed ``batch`` to a discriminator built with
        ``2 * groups`` sets and the loss with ``groups=2 * groups``.
    """

    def __init__(self, gamma: float = 0.5, groups: int = 1, complement: bool = True):
        super().__init__()
        if not (0.0 <= gamma <= 0.5):
            raise ValueError(f"gamma: expected a value in [0, 0.5], got {gamma!r}")
        self.gamma = float(gamma)
        self.groups = int(groups)
        self.complement = bool(complement)

    @property
    def output_groups(self) -> int:
        return self.groups * (2 if self.complement else 1)

    def forward(
        self, real: torch.Tensor, fake: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        beta, target = sample_mixing(
            real.shape[0], self.groups, self.gamma, generator=generator, device=real.device
        )
        target = target.to(real.dtype)
        if not self.complement:
            return mix(real, fake, beta), target, beta
        batch = torch.ops.batchgan.mix(real, fake, beta, True)
        return batch, torch.cat([target, 1 - target]), beta

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, groups={self.groups}, complement={self.complement}"


class BernoulliKLLoss(nn.Module):
    """``bernoulli_kl_loss`` as a module: ``forward(logits, target)``."""

    def __init__(self, mode: str = "bgan", groups: int = 1, reduction: str = "mean"):
        super().__init__()
        if mode not in ("bgan", "mbgan"):
            raise ValueError(f"mode: expected 'bgan' or 'mbgan', got {mode!r}")
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}")
        self.mode = mode
        self.groups = int(groups)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bernoulli_kl_loss(logits, target, self.mode, self.groups, self.reduction)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, groups={self.groups}, reduction={self.reduction!r}"
