"""Argument helpers and constants shared by the functional wrappers."""

import json
from typing import Sequence, Tuple, Union

import torch

ACTIVATIONS = ("identity", "relu", "leaky_relu")

# kPairwiseMaxPopulations (csrc/ops/pairwise_l1_features/pairwise_l1_features_math.h), read from
# the compiled library, which the package has loaded before any of its modules.
MAX_POPULATIONS = json.loads(torch.ops.batchgan._build_info())["max_populations"]

IntOrPair = Union[int, Sequence[int]]


def pair(v: IntOrPair, name: str) -> Tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    v = tuple(v)
    if len(v) != 2 or not all(isinstance(e, int) and not isinstance(e, bool) for e in v):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
    return v
