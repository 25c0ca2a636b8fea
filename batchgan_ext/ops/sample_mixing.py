"""Batch smoothing-gamma: the mixing vector of a mixed batch (BGAN paper, section 3.1)."""

import torch

from ._common import check_int, check_real

__all__ = ["sample_mixing"]


def sample_mixing(
    batch_size: int,
    num_sets: int = 1,
    gamma: float = 0.5,
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples the mixing vector of batch smoothing-gamma (BGAN paper, section 3.1).

    The batch is ``num_sets`` sets of ``batch_size // num_sets`` samples. For each set a ratio
    ``p ~ U([0, gamma] U [1 - gamma, 1])`` is drawn (gamma=0.5 is the uniform prior of eq. 4,
    gamma=0 gives pure batches, p in {0, 1}), then ``beta_b ~ Bernoulli(p)`` for each of its
    samples.

    Returns ``(beta, target)``: ``beta`` a bool tensor of shape (batch_size,) (True = take the
    real sample), ``target`` a float32 tensor of shape (num_sets,), the ratio ``#beta / set size``
    of each set, which the discriminator learns to predict. The complement batch of
    :func:`mix` has targets ``1 - target``. Deterministic under ``generator``.
    """
    batch_size = check_int(batch_size, "batch_size")
    num_sets = check_int(num_sets, "num_sets")
    if batch_size % num_sets != 0:
        raise ValueError(f"num_sets: the batch of {batch_size} samples does not split into {num_sets} equal sets")
    gamma = check_real(gamma, "gamma")
    if not (0.0 <= gamma <= 0.5):
        raise ValueError(f"gamma: expected a value in [0, 0.5], got {gamma!r}")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    set_size = batch_size // num_sets
    # One uniform per set picks the interval (below 0.5: [0, gamma]) and the position in it,
    # so p has equal mass on both intervals and gamma = 0 still yields p in {0, 1}.
    u = torch.rand(num_sets, generator=generator, device=device, dtype=torch.float64)
    low = u < 0.5
    position = torch.where(low, 2 * u, 2 * u - 1)
    p = torch.where(low, gamma * position, 1 - gamma * position)
    draws = torch.rand(num_sets, set_size, generator=generator, device=device, dtype=torch.float64)
    beta = draws < p[:, None]
    target = beta.sum(dim=1, dtype=torch.float32) / set_size
    return beta.reshape(batch_size), target
