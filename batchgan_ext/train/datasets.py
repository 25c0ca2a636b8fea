"""Built-in 2D mixtures of Gaussians for the mode-dropping benchmark (no downloads), with the
conventions of VEEGAN and PacGAN:
  - ring8:  8 modes at angle 2*pi*k/8 on the unit circle, std 0.01;
  - grid25: 25 modes on {-4, -2, 0, 2, 4}^2, std 0.05.
"""

import math

import torch

__all__ = ["MixtureOfGaussians2D", "ring8", "grid25", "DATASETS", "make_dataset"]


class MixtureOfGaussians2D:
    """An equal-weight mixture of isotropic Gaussians in the plane."""

    def __init__(self, name: str, means: torch.Tensor, std: float):
        if means.dim() != 2 or means.shape[1] != 2:
            raise ValueError(f"means: expected a (K, 2) tensor, got shape {tuple(means.shape)}")
        if not std > 0:
            raise ValueError(f"std: expected a positive value, got {std!r}")
        self.name = name
        self.means = means.to(torch.float32)
        self.std = float(std)

    @property
    def num_modes(self) -> int:
        return self.means.shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """n samples (n, 2): a uniformly chosen mode plus std * N(0, I)."""
        idx = torch.randint(self.num_modes, (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator)
        out = self.means[idx] + self.std * noise
        return out if device is None else out.to(device)

    def __repr__(self) -> str:
        return f"MixtureOfGaussians2D({self.name!r}, modes={self.num_modes}, std={self.std})"


def ring8() -> MixtureOfGaussians2D:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return MixtureOfGaussians2D("ring8", means, 0.01)


def grid25() -> MixtureOfGaussians2D:
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    means = torch.cartesian_prod(axis, axis)
    return MixtureOfGaussians2D("grid25", means, 0.05)


DATASETS = {"ring8": ring8, "grid25": grid25}


def make_dataset(name: str) -> MixtureOfGaussians2D:
    if name not in DATASETS:
        raise ValueError(f"dataset: expected one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name]()
