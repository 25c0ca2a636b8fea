"""``torch.ops.batchgan.bernoulli_kl_loss``: the Bernoulli-KL loss on the ratio of real samples
of each set (BGAN paper, eq. 3-5, 13, 14), and the generator loss built on the same kernel.

Kernels in csrc/ops/bernoulli_kl_loss (autograd in C++); fake kernel in ``_meta_registrations``."""

from typing import Union

import torch

__all__ = ['bernoulli_kl_loss', 'batch_generator_loss']


def bernoulli_kl_loss(
    logits: torch.Tensor,
    target: Union[torch.Tensor, float],
    mode: str = "bgan",
    num_sets: int = 1,
    reduction: str = "mean",
) -> torch.Tensor:
    """Discriminator loss of mixed batches: ``KL(B(u) || B(D))`` (BGAN paper, eq. 3-4).

    ``logits``: the discriminator's pre-sigmoid outputs, one per sample, shape (N,) or (N, 1),
    for a batch of ``num_sets`` sets of N/num_sets samples; ``target``: the true ratio u of real
    samples of each set, shape (num_sets,) (e.g. from :func:`sample_mixing`).

    Where the sigmoid sits:
      - ``mode='bgan'`` (eq. 13): the set's logits are averaged first (the invariant set-mean
        of eq. 10), then ``D = sigmoid(mean logit)``: one loss per set.
      - ``mode='mbgan'`` (eq. 14): ``D_b = sigmoid(logit_b)`` per sample, each compared with
        its set's target, then the losses are averaged.
    ``reduction``: 'mean' (over sets for bgan, over samples for mbgan), 'sum', or 'none'
    (shape (num_sets,) for bgan, (N,) for mbgan).

    Computed from logits as ``u softplus(-l) + (1-u) softplus(l) + u log u + (1-u) log(1-u)``:
    exact at u in {0, 1}, finite for any finite logit; float16/bfloat16 accumulate in float32.
    """
    if not isinstance(target, torch.Tensor):
        target = torch.full((num_sets,), float(target), dtype=logits.dtype, device=logits.device)
    return torch.ops.batchgan.bernoulli_kl_loss(logits, target, mode, num_sets, reduction)


def batch_generator_loss(
    logits: torch.Tensor, mode: str = "bgan", num_sets: int = 1, reduction: str = "mean"
) -> torch.Tensor:
    """Generator loss of eq. 5 in its non-saturating form, ``-log D``, on the discriminator's
    logits for mixed batches, with the sigmoid placed as in :func:`bernoulli_kl_loss`
    (bgan: ``-log sigmoid(mean logit)`` per set; mbgan: mean of ``-log sigmoid(logit_b)``).

    This is ``KL(B(1) || B(D))``, so it is the same kernel with target 1.
    """
    target = logits.new_ones((num_sets,))
    return torch.ops.batchgan.bernoulli_kl_loss(logits, target, mode, num_sets, reduction)
