"""Naive pure-PyTorch references of the batch-level features, written as the papers state
them. They define correctness in the tests and the baseline in the benchmarks; the pairwise
one materialises the N x N x B x C difference tensor, as the public implementations do."""

import torch

__all__ = ["pairwise_l1_features_reference", "minibatch_stddev_reference"]


def pairwise_l1_features_reference(M, num_sets=1, exclude_self=True, mean=False, split=None, num_populations=None):
    """c_b(i, j) = exp(-||M_i,b - M_j,b||_1), o_i,b = sum_j c_b(i, j) (Salimans et al. 2016,
    section 3.2), with the options of :func:`batchgan_ext.pairwise_l1_features`, by broadcasting."""
    n, b, _ = M.shape
    set_size = n // num_sets
    dist = (M[:, None] - M[None, :]).abs().sum(-1)  # (N, N, B): the gist's `norm`
    c = torch.exp(-dist)
    idx = torch.arange(n, device=M.device)
    same_set = (idx[:, None] // set_size) == (idx[None, :] // set_size)
    if exclude_self:
        same_set = same_set & (idx[:, None] != idx[None, :])
    if split is None:
        masks = [same_set]
    else:
        p_count = 2 if num_populations is None else num_populations
        masks = [same_set & (split[None, :] == p) for p in range(p_count)]
    feats = []
    for mask in masks:
        # Select, not multiply: a term outside the sum (another set or population, or j = i with
        # exclude_self) contributes nothing even when it is inf or NaN.
        o = torch.where(mask[:, :, None], c, torch.zeros((), dtype=c.dtype, device=c.device)).sum(1)
        if mean:
            count = mask.sum(1, keepdim=True).to(M.dtype)
            o = torch.where(count > 0, o / count.clamp(min=1), torch.zeros_like(o))
        feats.append(o)
    return feats[0] if split is None else torch.stack(feats, 1)


def minibatch_stddev_reference(x, group_size=4, num_channels=1):
    """StyleGAN2-ADA's MinibatchStdLayer.forward (Karras et al. 2018, section 3), verbatim in
    structure: strided groups via reshape(G, -1, ...), biased variance, sqrt(var + 1e-8)."""
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    xs = x.reshape(N, C, -1)
    G = min(group_size, N)
    F = num_channels
    c = C // F
    y = xs.reshape(G, -1, F, c, xs.shape[-1])  # [G n F c P]
    y = y - y.mean(dim=0)
    y = y.square().mean(dim=0)
    y = (y + 1e-8).sqrt()
    y = y.mean(dim=[2, 3])  # [n F]
    y = y.reshape(-1, F, 1).repeat(G, 1, xs.shape[-1])  # [N F P]
    return torch.cat([xs, y], dim=1).reshape(N, C + F, *spatial)
