"""Offline image datasets built from scikit-learn's bundled 8x8 digits (``sklearn.datasets.load_digits``:
1,797 images of 10 classes, shipped inside the package, so nothing is downloaded).

  digits          one digit, 1 x 32 x 32: the 8x8 image (values 0..16) upsampled bilinearly to 32 x 32,
                  the size of the SN-GAN/DCGAN networks of the BGAN paper's CIFAR-10 experiment, and
                  scaled to [-1, 1] (a generator's tanh range). 10 modes (the classes).
  stacked-digits  three independently drawn digits as the three channels, 3 x 32 x 32: 1,000 modes
                  (the class triples), as stacked MNIST in Salimans et al., VEEGAN and PacGAN (Table 2).

The digits are split once, deterministically, into a training part (the GAN's data) and a held-out
part (the evaluation classifier's test set): every fifth image of each class is held out. Samples
are drawn with replacement from the chosen part by an explicit ``torch.Generator``, so a seed
determines them.
"""

import functools

import torch
from torch.nn import functional as F

from ._extras import require

__all__ = ["IMAGE_DATASETS", "DigitImages", "load_digit_images", "make_image_dataset"]

IMAGE_SIZE = 32
HELD_OUT_EVERY = 5  # every 5th image of each class is held out
SPLITS = ("train", "test")


@functools.cache
def _all_digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    datasets = require("sklearn.datasets", "the digits datasets (scikit-learn's bundled load_digits)")
    bunch = datasets.load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)  # (1797, 8, 8), values 0..16
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    images = F.interpolate(images[:, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    return (images / 8.0 - 1.0).contiguous(), labels  # [0, 16] -> [-1, 1]


def load_digit_images(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The digits of one split as (images (N, 1, 32, 32) in [-1, 1], labels (N,) in 0..9); new tensors."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    images, labels = _all_digit_images()
    held_out = torch.zeros_like(labels, dtype=torch.bool)
    for digit in range(10):
        (index,) = torch.nonzero(labels == digit, as_tuple=True)
        held_out[index[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY]] = True
    keep = held_out if split == "test" else ~held_out
    return images[keep].clone(), labels[keep].clone()


class DigitImages:
    """Images made of ``channels`` independently drawn digits stacked along the channel dimension
    (1: digits, 3: stacked-digits). ``num_modes`` = 10 ** channels; a sample's mode is its class
    sequence read as a base-10 number (first channel most significant)."""

    def __init__(self, name: str, channels: int, split: str = "train"):
        if channels not in (1, 3):
            raise ValueError(f"channels: expected 1 (digits) or 3 (stacked-digits), got {channels!r}")
        self.name = name
        self.channels = channels
        self.split = split
        self.images, self.labels = load_digit_images(split)
        self.num_modes = 10**channels
        self.shape = (channels, IMAGE_SIZE, IMAGE_SIZE)

    def sample_with_modes(
        self, n: int, generator: torch.Generator | None = None, device=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n images (n, channels, 32, 32) and their modes (n,) in [0, num_modes)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive integer, got {n!r}")
        index = torch.randint(self.images.shape[0], (n, self.channels), generator=generator)
        images = self.images[index].squeeze(2)  # (n, channels, 1, H, W) -> (n, channels, H, W)
        modes = torch.zeros(n, dtype=torch.int64)
        for channel in range(self.channels):
            modes = modes * 10 + self.labels[index[:, channel]]
        if device is not None:
            images, modes = images.to(device), modes.to(device)
        return images, modes

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """n images (n, channels, 32, 32) in [-1, 1]."""
        return self.sample_with_modes(n, generator, device)[0]

    def __repr__(self) -> str:
        return f"DigitImages({self.name!r}, channels={self.channels}, split={self.split!r}, images={len(self.images)})"


IMAGE_DATASETS = {"digits": 1, "stacked-digits": 3}


def make_image_dataset(name: str, split: str = "train") -> DigitImages:
    if name not in IMAGE_DATASETS:
        raise ValueError(f"dataset: expected one of {sorted(IMAGE_DATASETS)}, got {name!r}")
    return DigitImages(name, IMAGE_DATASETS[name], split)
