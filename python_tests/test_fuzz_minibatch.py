"""Property fuzzing of the batch-level features: pairwise_l1_features, minibatch_stddev and the
MinibatchDiscrimination / MinibatchStdDev modules (see fuzz_common.py)."""

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import batchgan_ext as bg
from batchgan_ext._reference.minibatch import minibatch_stddev_reference, pairwise_l1_features_reference

from fuzz_common import (
    FLOATS,
    FUZZ,
    HUGE_INTS,
    LAYOUTS,
    NON_BOOLS,
    NON_INTS,
    TOLERANCES,
    WRONG_DTYPES,
    assert_matches,
    bad_num_sets,
    check_op,
    expect_error,
    faults,
    flush_case_counts,  # noqa: F401  (autouse fixture)
    time_bound,
    values,
    wrong_int,
)

# Fuzz cases include invalid values: on CUDA a device-side assert, which ends the CUDA context.
pytestmark = pytest.mark.emulated_only

# --------------------------------------------------------------------------------------------
# pairwise_l1_features

PAIRWISE_FAULTS = faults(
    "M_dtype",
    "M_shape",
    "M_empty",
    "num_sets",
    "split_dtype",
    "split_shape",
    "split_values",
    "num_populations",
    valid=4,
)

# Sum of up to n terms of at most 1 in float16/bfloat16: a few ulps of n.
PAIRWISE_TOLERANCES = dict(TOLERANCES)
PAIRWISE_TOLERANCES[torch.bfloat16] = dict(rtol=1e-2, atol=2e-2)


@st.composite
def pairwise_cases(draw):
    fault = draw(PAIRWISE_FAULTS)
    num_sets = draw(st.integers(1, 4))
    set_size = draw(st.integers(1, 5))
    n = num_sets * set_size
    b = draw(st.sampled_from([0, 1, 2, 3, 9]))
    c = draw(st.integers(0, 5))
    dtype = draw(st.sampled_from(FLOATS))
    M = draw(values((n, b, c), dtype, draw(st.sampled_from(LAYOUTS)), scale=draw(st.sampled_from([0.3, 1.0, 4.0]))))
    exclude_self, mean = draw(st.booleans()), draw(st.booleans())
    split, populations = None, 1
    if draw(st.booleans()):
        populations = draw(st.integers(1, 3))
        labels = draw(st.lists(st.integers(0, populations - 1), min_size=n, max_size=n))
        split = torch.tensor(labels, dtype=draw(st.sampled_from([torch.int64, torch.int32, torch.uint8])))
        if populations == 2 and draw(st.booleans()):
            split = split.bool()
    names = None
    if fault == "M_dtype":
        M = M.to(draw(st.sampled_from(WRONG_DTYPES)))
        names = ("M",)
    elif fault == "M_shape":
        M = draw(st.sampled_from([M.reshape(n, -1), M.unsqueeze(0), torch.zeros(n, dtype=dtype)]))
        names = ("M",)
    elif fault == "M_empty":
        M = torch.zeros(0, b, c, dtype=dtype)
        names = ("M",)
    elif fault == "num_sets":
        num_sets = bad_num_sets(draw, n)
        names = ("num_sets",)
    elif fault == "split_dtype":
        split = torch.zeros(n, dtype=draw(st.sampled_from([torch.float32, torch.float64, torch.complex64])))
        populations = 2
        names = ("split",)
    elif fault == "split_shape":
        split = draw(st.sampled_from([torch.zeros(n + 1, dtype=torch.int64), torch.zeros(n, 1, dtype=torch.int64)]))
        populations = 2
        names = ("split",)
    elif fault == "split_values":
        populations = draw(st.integers(1, 3))
        split = torch.zeros(n, dtype=torch.int64)
        split[draw(st.integers(0, n - 1))] = draw(st.sampled_from([-1, populations, 100]))
        names = ("split",)
    elif fault == "num_populations":
        if split is None and draw(st.booleans()):
            populations = draw(st.sampled_from([0, 2, -1]))
        else:
            split = torch.zeros(n, dtype=torch.int64)
            populations = draw(st.sampled_from([0, -1, 9, 2**40]))
        names = ("num_populations",)
    return M, num_sets, exclude_self, mean, split, populations, names


def _with_inf(n, b, c, exclude_self, where=(0, 0, 0), value=float("inf")):
    M = torch.randn(n, b, c)
    M[where] = value
    return (M, 1, exclude_self, False, None, 1, None)


@FUZZ
@given(case=pairwise_cases())
# The classes a former fuzz run found, always run: an inf sample's excluded self-pair (row path
# with B = 1, symmetric path with B = 9), a NaN sample alone in its set (empty sum), an inf
# with split labels.
@example(case=_with_inf(3, 1, 2, True))
@example(case=_with_inf(3, 9, 2, True, (1, 4, 1)))
@example(case=_with_inf(3, 9, 2, False, (2, 0, 0), -float("inf")))
@example(case=_with_inf(1, 1, 1, True, value=float("nan")))
@example(
    case=(
        torch.tensor([[[float("inf")]], [[0.0]], [[1.0]], [[float("-inf")]]]),
        2,
        True,
        True,
        torch.tensor([0, 1, 1, 0]),
        2,
        None,
    )
)
def test_fuzz_pairwise_l1_features_op(emulated, case):
    *args, names = case
    M, num_sets, exclude_self, mean, split, populations = args

    def expected():
        return pairwise_l1_features_reference(
            M.double(), num_sets, exclude_self, mean, split, populations if split is not None else None
        )

    check_op(emulated, "pairwise_l1_features", args, names, expected, M.dtype, PAIRWISE_TOLERANCES)


@FUZZ
@given(
    case=pairwise_cases(),
    wrong=st.sampled_from([None, None, "num_sets", "exclude_self", "mean", "num_populations"]),
    data=st.data(),
)
def test_fuzz_pairwise_l1_features_function(case, wrong, data):
    M, num_sets, exclude_self, mean, split, populations, names = case
    with time_bound("pairwise_l1_features_function"):
        kwargs = dict(
            num_sets=num_sets,
            exclude_self=exclude_self,
            mean=mean,
            split=split,
            num_populations=populations if split is not None or populations != 1 else None,
        )
        if wrong in ("num_sets", "num_populations"):
            kwargs[wrong] = data.draw(st.sampled_from([v for v in NON_INTS if v is not None]))
            names = (wrong,) + (names or ())
        elif wrong in ("exclude_self", "mean"):
            kwargs[wrong] = data.draw(st.sampled_from(NON_BOOLS))
            names = (wrong,) + (names or ())
        if names is not None:
            expect_error(lambda: bg.pairwise_l1_features(M, **kwargs), names)
            return
        got = bg.pairwise_l1_features(M, **kwargs)
        expected = pairwise_l1_features_reference(M.double(), **kwargs)
        assert_matches(got, expected, M.dtype, PAIRWISE_TOLERANCES)


@st.composite
def discrimination_args(draw):
    kw = dict(
        in_features=draw(st.integers(1, 4)),
        out_features=draw(st.integers(1, 3)),
        kernel_dims=draw(st.integers(1, 4)),
        mean=draw(st.booleans()),
        exclude_self=draw(st.booleans()),
        num_sets=draw(st.integers(1, 3)),
        bias=draw(st.booleans()),
        num_populations=draw(st.sampled_from([None, 1, 2, 3])),
    )
    fault = draw(
        st.sampled_from(
            [
                None,
                None,
                None,
                "in_features",
                "out_features",
                "kernel_dims",
                "mean",
                "exclude_self",
                "num_sets",
                "bias",
                "num_populations",
            ]
        )
    )
    names = None
    if fault in ("in_features", "out_features", "kernel_dims", "num_sets", "num_populations"):
        bad = [v for v in NON_INTS if v is not None] + [0, -2]
        kw[fault] = draw(st.sampled_from(bad))
        names = (fault,)
    elif fault is not None:
        kw[fault] = draw(st.sampled_from(NON_BOOLS))
        names = (fault,)
    return kw, names


@FUZZ
@given(args=discrimination_args(), batch=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_fuzz_minibatch_discrimination_module(args, batch, seed):
    kw, names = args
    with time_bound("MinibatchDiscrimination"):
        if names is not None:
            expect_error(lambda: bg.MinibatchDiscrimination(**kw), names)
            return
        torch.manual_seed(seed)
        module = bg.MinibatchDiscrimination(**kw).double()
        x = torch.randn(batch, kw["in_features"], dtype=torch.float64)
        split = None
        if kw["num_populations"] is not None:
            split = torch.randint(0, kw["num_populations"], (batch,))
        if batch % kw["num_sets"] != 0:
            expect_error(lambda: module(x, split), ("num_sets",))
            return
        out = module(x, split).detach()
        M = (x @ module.T.detach().reshape(kw["in_features"], -1)).reshape(batch, kw["out_features"], kw["kernel_dims"])
        o = pairwise_l1_features_reference(
            M, kw["num_sets"], kw["exclude_self"], kw["mean"], split, kw["num_populations"]
        ).flatten(1)
        if module.bias is not None:
            o = o + module.bias.detach()
        assert_matches(out, torch.cat([x, o], 1), torch.float64)


# --------------------------------------------------------------------------------------------
# minibatch_stddev

STDDEV_FAULTS = faults(
    "x_dtype", "x_shape", "x_empty", "group_size", "group_size_split", "num_channels", "num_channels_split"
)


@st.composite
def stddev_cases(draw):
    fault = draw(STDDEV_FAULTS)
    group_size = draw(st.integers(1, 5))
    n = draw(st.sampled_from([k for k in range(1, 9) if k % min(group_size, k) == 0]))
    num_channels = draw(st.integers(1, 3))
    c = num_channels * draw(st.integers(1, 2))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    dtype = draw(st.sampled_from(FLOATS))
    x = draw(values((n, c) + spatial, dtype, draw(st.sampled_from(LAYOUTS))))
    names = None
    if fault == "x_dtype":
        x = x.to(draw(st.sampled_from(WRONG_DTYPES)))
        names = ("x",)
    elif fault == "x_shape":
        x = torch.zeros(n, dtype=dtype)
        names = ("x",)
    elif fault == "x_empty":
        x = torch.zeros((0, c) + spatial, dtype=dtype)
        names = ("x",)
    elif fault == "group_size":
        group_size = draw(st.sampled_from([0, -1] + [-(2**62)]))
        names = ("group_size",)
    elif fault == "group_size_split":
        if n < 3:
            n = 3
            x = torch.zeros((n, c) + spatial, dtype=dtype)
        group_size = 2 if n % 2 else next(k for k in range(3, n + 1) if n % k)
        names = ("group_size",)
    elif fault == "num_channels":
        num_channels = draw(st.sampled_from([0, -2] + HUGE_INTS))
        names = ("num_channels",)
    elif fault == "num_channels_split":
        c = 3
        x = torch.zeros((n, c) + spatial, dtype=dtype)
        num_channels = 2
        names = ("num_channels",)
    return x, group_size, num_channels, names


@FUZZ
@given(case=stddev_cases())
def test_fuzz_minibatch_stddev_op(emulated, case):
    x, group_size, num_channels, names = case
    check_op(
        emulated,
        "minibatch_stddev",
        (x, group_size, num_channels),
        names,
        lambda: minibatch_stddev_reference(x.double(), group_size, num_channels),
        x.dtype,
    )


@FUZZ
@given(
    case=stddev_cases(), group_size=st.one_of(st.none(), wrong_int()), num_channels=st.one_of(st.none(), wrong_int())
)
def test_fuzz_minibatch_stddev_function_and_module(case, group_size, num_channels):
    x, g, f, names = case
    with time_bound("minibatch_stddev_function"):
        if group_size is not None:
            expect_error(lambda: bg.minibatch_stddev(x, group_size, f), ("group_size",))
            expect_error(lambda: bg.MinibatchStdDev(group_size, 1), ("group_size",))
            return
        if num_channels is not None:
            # The case may hold its own fault (in group_size) besides the wrong type.
            expect_error(lambda: bg.minibatch_stddev(x, g, num_channels), ("num_channels",) + (names or ()))
            expect_error(lambda: bg.MinibatchStdDev(4, num_channels), ("num_channels",))
            return
        if names is not None:
            expect_error(lambda: bg.minibatch_stddev(x, g, f), names)
            if g >= 1 and f >= 1:
                expect_error(lambda: bg.MinibatchStdDev(g, f)(x), names)
            return
        expected = minibatch_stddev_reference(x.double(), g, f)
        assert_matches(bg.minibatch_stddev(x, g, f), expected, x.dtype)
        assert_matches(bg.MinibatchStdDev(g, f)(x), expected, x.dtype)
