"""Mode-coverage metrics of the 2D benchmark, and the null generators every result is read against.

On generated samples (2,500 by default), with K modes:
  - a sample is *high quality* when it lies within 3 standard deviations of its nearest mode;
  - ``modes_covered`` (VEEGAN / PacGAN rule, kept for comparison with the literature): a mode counts
    when at least one high-quality sample is nearest to it. Uniform noise on the grid's square
    passes this for 24 of 25 modes, so it is not evidence on its own;
  - ``modes_covered_strict``: a mode counts when it receives at least 20% of the n/K high-quality
    samples a perfect generator would give it (>= 20 of 2,500 on grid25, >= 62.5 on ring8);
  - ``reverse_kl``: KL(q || uniform) between the histogram q of high-quality samples over the modes
    and the uniform distribution over all modes (0 when every mode gets an equal share, log K when
    all sit on one mode; None when there is no high-quality sample), PacGAN's "reverse KL".

Null rows (:func:`null_metrics`): the same metric on samples of two generators that learned
nothing about the modes: ``null-uniform`` (uniform on the modes' bounding box widened by 3 std) and
``null-gaussian`` (one Gaussian with the data's mean and covariance). A trained generator's result
means something only where it beats both.
"""

import math

import torch

__all__ = ["mode_metrics", "null_samples", "null_metrics", "NULL_GENERATORS", "STRICT_SHARE"]

# A mode is strictly covered when it gets this share of the n / K high-quality samples it is owed.
STRICT_SHARE = 0.2
NULL_GENERATORS = ("null-uniform", "null-gaussian")


def mode_metrics(samples: torch.Tensor, means: torch.Tensor, std: float, threshold: float = 3.0) -> dict:
    if not isinstance(samples, torch.Tensor) or samples.dim() != 2 or samples.shape[1] != means.shape[1]:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"samples: expected a tensor of shape (n, {means.shape[1]}), got {shape}")
    if samples.shape[0] == 0:
        raise ValueError("samples: expected at least one sample")
    samples = samples.detach().to(torch.float64).cpu()
    if not torch.isfinite(samples).all():
        raise ValueError("samples: expected finite values (the generator produced NaN or inf)")
    means = means.to(torch.float64).cpu()
    num_samples, num_modes = samples.shape[0], means.shape[0]
    distances = torch.cdist(samples, means)
    nearest_distance, nearest = distances.min(dim=1)
    high_quality = nearest_distance <= threshold * std
    counts = torch.bincount(nearest[high_quality], minlength=num_modes)
    num_hq = int(high_quality.sum())
    reverse_kl: float | None = None
    if num_hq > 0:
        q = counts.to(torch.float64) / num_hq
        q = q[q > 0]
        reverse_kl = float((q * torch.log(q * num_modes)).sum())
    strict_count = STRICT_SHARE * num_samples / num_modes
    return {
        "num_samples": num_samples,
        "num_modes": num_modes,
        "modes_covered": int((counts > 0).sum()),
        "modes_covered_strict": int((counts >= strict_count).sum()),
        "high_quality_fraction": num_hq / num_samples,
        "reverse_kl": reverse_kl,
        "mode_counts": counts.tolist(),
        "max_reverse_kl": math.log(num_modes),
    }


def null_samples(kind: str, means: torch.Tensor, std: float, n: int, seed: int = 0) -> torch.Tensor:
    """n samples of a null generator (see the module docstring), drawn from a seeded generator."""
    rng = torch.Generator().manual_seed(seed)
    means = means.to(torch.float64)
    if kind == "null-uniform":
        low = means.min(dim=0).values - 3 * std
        high = means.max(dim=0).values + 3 * std
        return low + (high - low) * torch.rand(n, means.shape[1], generator=rng, dtype=torch.float64)
    if kind == "null-gaussian":
        # The mixture's covariance: the spread of the equally weighted means plus each mode's std^2 I.
        centre = means.mean(dim=0)
        cov = torch.cov(means.T, correction=0) + std**2 * torch.eye(means.shape[1], dtype=torch.float64)
        z = torch.randn(n, means.shape[1], generator=rng, dtype=torch.float64)
        return centre + z @ torch.linalg.cholesky(cov).T
    raise ValueError(f"kind: expected one of {NULL_GENERATORS}, got {kind!r}")


def null_metrics(means: torch.Tensor, std: float, n: int = 2500, seed: int = 0) -> dict[str, dict]:
    """:func:`mode_metrics` of each null generator with n samples."""
    return {kind: mode_metrics(null_samples(kind, means, std, n, seed), means, std) for kind in NULL_GENERATORS}
