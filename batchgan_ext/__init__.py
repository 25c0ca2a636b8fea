"""batchgan_ext: fused PyTorch C++/CUDA kernels for batch-level GAN discriminators.

Importing the package loads the compiled library, which registers the ops as
``torch.ops.batchgan.*``; the Python modules below add their fake (meta) kernels and autograd
formulas, and the functional and ``nn.Module`` wrappers.
"""

import json as _json

import torch as _torch

from . import _C  # noqa: F401  (registers torch.ops.batchgan.*)
from .ops.mixing import (  # noqa: E402
    batch_generator_loss,
    bernoulli_kl_loss,
    mix,
    sample_mixing,
)
from .nn.mixing import BernoulliKLLoss, MixedBatch  # noqa: E402
from .ops.equivariant import equivariant_conv2d, equivariant_linear, set_mean  # noqa: E402
from .nn.equivariant import EquivariantConv2d, EquivariantLinear, SetMean  # noqa: E402
from .convert import make_equivariant  # noqa: E402
from .ops.minibatch import minibatch_stddev, pairwise_l1_features  # noqa: E402
from .nn.minibatch import MinibatchDiscrimination, MinibatchStdDev  # noqa: E402

__version__ = "0.1.0"


def build_info():
    """Which backends the compiled library contains, e.g. ``{"backends": ["cpu", "cuda"], ...}``."""
    return _json.loads(_torch.ops.batchgan._build_info())


__all__ = [
    "BernoulliKLLoss",
    "EquivariantConv2d",
    "EquivariantLinear",
    "MinibatchDiscrimination",
    "MinibatchStdDev",
    "MixedBatch",
    "SetMean",
    "batch_generator_loss",
    "bernoulli_kl_loss",
    "build_info",
    "equivariant_conv2d",
    "equivariant_linear",
    "make_equivariant",
    "minibatch_stddev",
    "mix",
    "pairwise_l1_features",
    "sample_mixing",
    "set_mean",
]
