"""Argument helpers and constants shared by the functional wrappers and the modules.

The checks are about Python types only (an int where an int is expected, a bool for a flag, ...):
no silent coercion such as ``int(2.5)`` or ``bool("no")``. Values are checked by the ops' C++ host
code, which is also reached through ``torch.ops.batchgan``."""

import json
import numbers
from collections.abc import Sequence

import torch

ACTIVATIONS = ("identity", "relu", "leaky_relu")

# kPairwiseMaxPopulations (csrc/ops/pairwise_l1_features/pairwise_l1_features_math.h), read from
# the compiled library, which the package has loaded before any of its modules.
MAX_POPULATIONS = json.loads(torch.ops.batchgan._build_info())["max_populations"]

# The ops' integer arguments are int64 in their schemas.
INT64_MAX = 2**63 - 1

IntOrPair = int | Sequence[int]


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_int(value, name: str, minimum: int | None = 1) -> int:
    """``value`` as an int in [minimum, 2**63 - 1]; bools, floats, strings are rejected.
    ``minimum=None``: any int64 (the op checks the range, e.g. a set count against the batch)."""
    if not _is_int(value):
        raise ValueError(f"{name}: expected an integer, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if minimum is None:
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise ValueError(f"{name}: expected an int64 value, got {value}")
        return value
    if not minimum <= value <= INT64_MAX:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name}: expected {what} (below 2**63), got {value}")
    return value


def check_optional_int(value, name: str, minimum: int | None = 1):
    return None if value is None else check_int(value, name, minimum)


def check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected a bool (True or False), got {value!r} of type {type(value).__name__}")
    return value


def check_real(value, name: str) -> float:
    """``value`` as a float; a real number (not a bool, a string or a tensor) is expected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a real number, got {value!r} of type {type(value).__name__}")
    return float(value)


def check_str(value, name: str) -> str:
    """A string argument (its value is checked by the op)."""
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {value!r} of type {type(value).__name__}")
    return value


def pair(v: IntOrPair, name: str) -> tuple[int, int]:
    if _is_int(v):
        v = (v, v)
    try:
        v = tuple(v)
    except TypeError:
        raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}") from None
    if len(v) != 2 or not all(_is_int(e) for e in v):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
    if not all(-INT64_MAX <= e <= INT64_MAX for e in v):
        raise ValueError(f"{name}: expected int64 values, got {v!r}")
    return (int(v[0]), int(v[1]))
