"""Naive pure-PyTorch references of the mixed-batch ops, written as the paper states them.
They define correctness in the tests and the baseline in the benchmarks."""

import torch

__all__ = ["mix_reference", "bernoulli_kl_loss_reference"]


def mix_reference(real, fake, beta, complement=False):
    """Eq. 2: ``m_b = x_b if beta_b else x~_b`` (and the complement with 1 - beta), as a select:
    the product form ``x * beta + x~ * (1 - beta)`` would turn an unused inf/NaN sample into NaN."""
    shape = (-1,) + (1,) * (real.dim() - 1)
    b = (beta != 0).reshape(shape)
    mixed = torch.where(b, real, fake)
    if not complement:
        return mixed
    return mixed, torch.where(b, fake, real)


def bernoulli_kl_loss_reference(logits, target, mode="bgan", num_sets=1, reduction="mean"):
    """Eq. 3 with D = sigmoid(.), computed in float64; eq. 13 (bgan) or eq. 14 (mbgan)."""
    out_dtype = logits.dtype
    logits = logits.reshape(-1).double()
    n = logits.shape[0]
    u = target.reshape(-1).double()
    per_set = logits.reshape(num_sets, n // num_sets)
    if mode == "bgan":
        logit = per_set.mean(dim=1)
        uu = u
    else:
        logit = per_set
        uu = u[:, None].expand_as(per_set)
    # u log(u/v) + (1-u) log((1-u)/(1-v)), with 0 log 0 = 0; log v = -softplus(-logit). A term of
    # weight 0 is selected out, not multiplied by 0, so logit = +-inf gives the limit, not 0 * inf.
    zero = torch.zeros((), dtype=logit.dtype)
    kl = (
        torch.xlogy(uu, uu)
        + torch.where(uu > 0, uu * torch.nn.functional.softplus(-logit), zero)
        + torch.xlogy(1 - uu, 1 - uu)
        + torch.where(uu < 1, (1 - uu) * torch.nn.functional.softplus(logit), zero)
    )
    if reduction == "none":
        return kl.reshape(-1).to(out_dtype)
    if reduction == "sum":
        return kl.sum().to(out_dtype)
    return kl.mean().to(out_dtype)
