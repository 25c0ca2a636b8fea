"""Argument helpers and constants shared by the functional wrappers."""

from typing import Sequence, Tuple, Union

ACTIVATIONS = ("identity", "relu", "leaky_relu")

# kPairwiseMaxPopulations in csrc/ops/pairwise_l1_features/pairwise_l1_features_math.h
MAX_POPULATIONS = 8

IntOrPair = Union[int, Sequence[int]]


def pair(v: IntOrPair, name: str) -> Tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    v = tuple(v)
    if len(v) != 2 or not all(isinstance(e, int) and not isinstance(e, bool) for e in v):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
    return v
