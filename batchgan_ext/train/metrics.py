"""Mode-coverage metrics of the 2D benchmark (VEEGAN / PacGAN conventions).

On generated samples (2,500 by default): a sample is *high quality* when it lies within
3 standard deviations of its nearest mode; a mode is *covered* when at least one high-quality
sample is nearest to it; the KL is KL(q || uniform) between the histogram q of high-quality
samples over the modes and the uniform distribution over all modes (0 when every mode gets an
equal share, log K when all samples sit on one mode; None when there is no high-quality sample).
"""

import math

import torch

__all__ = ["mode_metrics"]


def mode_metrics(samples: torch.Tensor, means: torch.Tensor, std: float, threshold: float = 3.0) -> dict:
    if samples.dim() != 2 or samples.shape[1] != means.shape[1]:
        raise ValueError(f"samples: expected shape (n, {means.shape[1]}), got {tuple(samples.shape)}")
    if samples.shape[0] == 0:
        raise ValueError("samples: expected at least one sample")
    samples = samples.detach().to(torch.float64).cpu()
    means = means.to(torch.float64).cpu()
    distances = torch.cdist(samples, means)
    nearest_distance, nearest = distances.min(dim=1)
    high_quality = nearest_distance <= threshold * std
    counts = torch.bincount(nearest[high_quality], minlength=means.shape[0])
    num_hq = int(high_quality.sum())
    kl: float | None = None
    if num_hq > 0:
        q = counts.to(torch.float64) / num_hq
        q = q[q > 0]
        kl = float((q * torch.log(q * means.shape[0])).sum())
    return {
        "num_samples": int(samples.shape[0]),
        "num_modes": int(means.shape[0]),
        "modes_covered": int((counts > 0).sum()),
        "high_quality_fraction": num_hq / samples.shape[0],
        "kl_to_uniform": kl,
        "mode_counts": counts.tolist(),
        "max_kl": math.log(means.shape[0]),
    }
