"""Mixed batches (BGAN paper, section 3): sampling the mixing vector, the fused gather of real
and fake samples, and the Bernoulli-KL loss on the predicted ratio of real samples.

The kernels are ``torch.ops.batchgan.mix`` and ``torch.ops.batchgan.bernoulli_kl_loss``
(csrc/ops/mix, csrc/ops/bernoulli_kl), with their autograd in C++ (the ops' autograd/ folders);
this module registers their fake kernels (shape inference for torch.compile) and wraps them
for users.
"""

from typing import Optional, Tuple, Union

import torch
from torch._prims_common import suggest_memory_format

__all__ = ["sample_mixing", "mix", "bernoulli_kl_loss", "batch_generator_loss"]


# --------------------------------------------------------------------------------------------
# sampling


def sample_mixing(
    batch_size: int,
    num_sets: int = 1,
    gamma: float = 0.5,
    *,
    generator: Optional[torch.Generator] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if isinstance(num_sets, bool) or not isinstance(num_sets, int) or num_sets < 1:
        raise ValueError(f"num_sets: expected a positive integer, got {num_sets!r}")
    if batch_size % num_sets != 0:
        raise ValueError(f"num_sets: the batch of {batch_size} samples does not split into {num_sets} equal sets")
    if not (0.0 <= float(gamma) <= 0.5):
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


# --------------------------------------------------------------------------------------------
# mix


@torch.library.register_fake("batchgan::mix")
def _mix_fake(real, fake, beta, complement=False):
    torch._check(real.dim() >= 1, lambda: "real: expected a batch of samples with the batch dimension first")
    torch._check(fake.shape == real.shape, lambda: f"fake: expected the shape of real {tuple(real.shape)}")
    torch._check(fake.dtype == real.dtype, lambda: f"fake: expected the dtype of real ({real.dtype})")
    for name, t in (("fake", fake), ("beta", beta)):
        torch._check(
            t.device == real.device,
            lambda: f"{name}: expected a tensor on the same device as real ({real.device}), got one on {t.device}",
        )
    torch._check(
        beta.dim() == 1 and beta.shape[0] == real.shape[0],
        lambda: f"beta: expected a 1-d mask of length {real.shape[0]} (the batch size)",
    )
    shape = (real.shape[0] * (2 if complement else 1),) + tuple(real.shape[1:])
    return torch.empty(shape, dtype=real.dtype, device=real.device, memory_format=suggest_memory_format(real))


@torch.library.register_fake("batchgan::_mix_backward")
def _mix_backward_fake(grad, beta, complement):
    halves = 2 if complement else 1
    shape = (grad.shape[0] // halves,) + tuple(grad.shape[1:])
    fmt = suggest_memory_format(grad)
    return tuple(torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=fmt) for _ in range(2))


# Autograd of mix and mix_backward: C++ kernels on the Autograd key
# (csrc/ops/mix/autograd/mix_autograd.cpp).


def mix(
    real: torch.Tensor, fake: torch.Tensor, beta: torch.Tensor, complement: bool = False
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """The mixed batch ``m_b = real_b if beta_b else fake_b`` (BGAN paper, eq. 2).

    A gather of whole samples, never the arithmetic ``real * beta + fake * (1 - beta)``: it
    costs one copy, is exact, and a NaN or inf in an unused sample does not leak into the
    batch. ``real`` and ``fake`` are (B, ...) tensors of one float dtype (any sample shape;
    channels_last batches stay channels_last); ``beta`` is a bool (or 0/1) tensor of shape (B,).

    With ``complement=True`` returns ``(mixed, complement)``, where ``complement`` is the batch
    of the samples ``mixed`` left out (mask ``1 - beta``, paper section 3.1), so no sample is
    wasted. Both are views of one (2B, ...) tensor, ``torch.ops.batchgan.mix``'s output, which
    a discriminator can also take at once as two sets.

    Backward routes each output gradient to the one sample it came from.
    """
    out = torch.ops.batchgan.mix(real, fake, beta, complement)
    if not complement:
        return out
    batch = real.shape[0]
    return out[:batch], out[batch:]


# --------------------------------------------------------------------------------------------
# Bernoulli-KL loss


@torch.library.register_fake("batchgan::bernoulli_kl_loss")
def _bernoulli_kl_loss_fake(logits, target, mode="bgan", num_sets=1, reduction="mean"):
    torch._check(mode in ("bgan", "mbgan"), lambda: f"mode: expected 'bgan' or 'mbgan', got {mode!r}")
    torch._check(
        reduction in ("none", "mean", "sum"), lambda: f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}"
    )
    n = logits.shape[0]
    torch._check(num_sets >= 1 and n % num_sets == 0, lambda: f"num_sets: the batch of {n} samples does not split into {num_sets} sets")
    if reduction != "none":
        return logits.new_empty(())
    return logits.new_empty((num_sets,) if mode == "bgan" else (n,))


@torch.library.register_fake("batchgan::_bernoulli_kl_loss_backward")
def _bernoulli_kl_loss_backward_fake(grad, logits, target, mode, num_sets, reduction):
    return torch.empty_like(logits, memory_format=torch.contiguous_format), torch.empty_like(
        target, memory_format=torch.contiguous_format
    )


# Autograd: csrc/ops/bernoulli_kl/autograd/bernoulli_kl_autograd.cpp.


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
