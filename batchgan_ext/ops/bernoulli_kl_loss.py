"""``torch.ops.batchgan.bernoulli_kl_loss``: the Bernoulli-KL loss on the ratio of real samples
of each set (BGAN paper, eq. 3-5, 13, 14), and the generator loss built on the same kernel.

Kernels in csrc/ops/bernoulli_kl_loss (autograd in C++); fake kernel in ``_meta_registrations``."""

import torch

from ._common import check_int, check_real, check_str

__all__ = ["bernoulli_kl_loss", "batch_generator_loss"]


def bernoulli_kl_loss(
    logits: torch.Tensor,
    target: torch.Tensor | float,
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
    A term with weight u = 0 or 1 - u = 0 is left out, so infinite logits give the limits (0 for
    u = 1 and logit +inf, +inf when the sigmoid saturates on the wrong side); NaN gives NaN.
    """
    num_sets, mode, reduction = _check_arguments(logits, num_sets, mode, reduction)
    if not isinstance(target, torch.Tensor):
        target = torch.full((num_sets,), check_real(target, "target"), dtype=logits.dtype, device=logits.device)
    return torch.ops.batchgan.bernoulli_kl_loss(logits, target, mode, num_sets, reduction)


def _check_arguments(logits, num_sets, mode, reduction):
    """Types of the arguments, and a set count the batch can hold, before a (num_sets,) target is
    allocated from it (the op checks the rest)."""
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"logits: expected a tensor, got {type(logits).__name__}")
    num_sets = check_int(num_sets, "num_sets", minimum=None)
    if num_sets < 1:
        raise ValueError(f"num_sets: expected a positive number of sets, got {num_sets}")
    if logits.dim() >= 1 and logits.shape[0] == 0:
        raise ValueError("logits: expected a non-empty batch, got 0 samples")
    if logits.dim() >= 1 and num_sets > logits.shape[0]:
        raise ValueError(f"num_sets: the batch of {logits.shape[0]} samples does not split into {num_sets} equal sets")
    return num_sets, check_str(mode, "mode"), check_str(reduction, "reduction")


def batch_generator_loss(
    logits: torch.Tensor, mode: str = "bgan", num_sets: int = 1, reduction: str = "mean"
) -> torch.Tensor:
    """Generator loss of eq. 5 in its non-saturating form, ``-log D``, on the discriminator's
    logits for mixed batches, with the sigmoid placed as in :func:`bernoulli_kl_loss`
    (bgan: ``-log sigmoid(mean logit)`` per set; mbgan: mean of ``-log sigmoid(logit_b)``).

    This is ``KL(B(1) || B(D))``, so it is the same kernel with target 1.
    """
    num_sets, mode, reduction = _check_arguments(logits, num_sets, mode, reduction)
    target = logits.new_ones((num_sets,))
    return torch.ops.batchgan.bernoulli_kl_loss(logits, target, mode, num_sets, reduction)
