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
        self, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        beta, target = sample_mixing(real.shape[0], self.num_sets, self.gamma, generator=generator, device=real.device)
        target = target.to(real.dtype)
        if not self.complement:
            return mix(real, fake, beta), target, beta
        batch = torch.ops.batchgan.mix(real, fake, beta, True)
        return batch, torch.cat([target, 1 - target]), beta

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, num_sets={self.num_sets}, complement={self.complement}"


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
