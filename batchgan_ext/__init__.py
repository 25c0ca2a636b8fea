"""batchgan_ext: fused PyTorch C++/CUDA kernels for batch-level GAN discriminators.

Importing the package loads the compiled library, which registers the ops as
``torch.ops.batchgan.*``; ``_meta_registrations`` adds their fake kernels, ``ops`` the functional API and ``nn`` the
``nn.Module`` wrappers.
"""

import json as _json

import torch as _torch

try:
    from . import _C  # noqa: F401  (registers torch.ops.batchgan.*)
except ImportError as _error:  # pragma: no cover - exercised by running from a source checkout
    import os as _os

    _here = _os.path.dirname(_os.path.abspath(__file__))
    if not any(name.startswith("_C.") for name in _os.listdir(_here)):
        # Python found this package's sources (e.g. `python -m ...` run from the repository
        # root, which puts the checkout first on sys.path) instead of the installed build.
        raise ImportError(
            f"batchgan_ext: the compiled extension (_C) is missing from {_here}: this is the source "
            "tree, not the installed package. Run from another directory (the installed package is "
            "then imported), or build in place with `python setup.py build_ext --inplace`."
        ) from _error
    raise
from . import _meta_registrations  # noqa: F401  (fake kernels of every op)
from .convert import make_equivariant
from .nn.equivariant import EquivariantConv2d, EquivariantLinear, SetBatchNorm, SetMean
from .nn.minibatch import MinibatchDiscrimination, MinibatchStdDev
from .nn.mixing import BernoulliKLLoss, MixedBatch
from .nn.packing import Pack, pack
from .nn.virtual_batch_norm import VirtualBatchNorm1d, VirtualBatchNorm2d, record_reference
from .ops import (
    batch_generator_loss,
    bernoulli_kl_loss,
    equivariant_conv2d,
    equivariant_linear,
    minibatch_stddev,
    mix,
    pairwise_l1_features,
    sample_mixing,
    set_mean,
)

__version__ = "0.2.0"  # the one source of the version: pyproject.toml reads it (tool.setuptools.dynamic)


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
    "Pack",
    "SetBatchNorm",
    "SetMean",
    "VirtualBatchNorm1d",
    "VirtualBatchNorm2d",
    "batch_generator_loss",
    "bernoulli_kl_loss",
    "build_info",
    "equivariant_conv2d",
    "equivariant_linear",
    "make_equivariant",
    "minibatch_stddev",
    "mix",
    "pack",
    "pairwise_l1_features",
    "record_reference",
    "sample_mixing",
    "set_mean",
]
