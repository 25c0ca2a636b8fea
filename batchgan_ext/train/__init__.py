"""Training layer: BGAN / M-BGAN and baseline GANs (minibatch discrimination, minibatch stddev,
PacGAN, mixup) on the 2D mode-dropping benchmark, built from batchgan_ext's public ops and modules.
CLI: ``python -m batchgan_ext.train --help``; sweeps: ``python -m batchgan_ext.train.sweep``;
tables: ``python -m batchgan_ext.train.report``."""

from .datasets import DATASETS, MixtureOfGaussians2D, grid25, make_dataset, ring8
from .metrics import mode_metrics, null_metrics, null_samples
from .networks import make_discriminator, make_generator
from .objectives import METHODS, GANLoss
from .trainer import PRESETS, TrainConfig, Trainer

__all__ = [
    "DATASETS",
    "GANLoss",
    "METHODS",
    "PRESETS",
    "MixtureOfGaussians2D",
    "TrainConfig",
    "Trainer",
    "grid25",
    "make_dataset",
    "make_discriminator",
    "make_generator",
    "mode_metrics",
    "null_metrics",
    "null_samples",
    "ring8",
]
