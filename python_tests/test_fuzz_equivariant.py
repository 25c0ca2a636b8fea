"""Property fuzzing of the permutation-equivariant ops: set_mean, equivariant_linear,
equivariant_conv2d and the SetMean / EquivariantLinear / EquivariantConv2d modules (see
fuzz_common.py)."""

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import batchgan_ext as bg
from batchgan_ext._reference.equivariant import (
    equivariant_conv2d_reference,
    equivariant_linear_reference,
    set_mean_reference,
)

from fuzz_common import (
    FLOATS,
    FUZZ,
    LAYOUTS,
    NON_BOOLS,
    NON_INTS,
    NON_REALS,
    PRODUCT_TOLERANCES,
    WRONG_DTYPES,
    assert_matches,
    bad_num_sets,
    check_op,
    expect_error,
    faults,
    flush_case_counts,  # noqa: F401  (autouse fixture)
    num_sets_for,
    time_bound,
    values,
    wrong_int,
)

# Fuzz cases include invalid values: on CUDA a device-side assert, which ends the CUDA context.
pytestmark = pytest.mark.emulated_only

ACTIVATIONS = ["identity", "relu", "leaky_relu"]


# --------------------------------------------------------------------------------------------
# set_mean

SET_MEAN_FAULTS = faults("x_dtype", "x_0d", "x_empty", "num_sets")


@st.composite
def set_mean_cases(draw):
    fault = draw(SET_MEAN_FAULTS)
    batch = draw(st.integers(1, 8))
    sample = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    dtype = draw(st.sampled_from(FLOATS))
    x = draw(values((batch,) + sample, dtype, draw(st.sampled_from(LAYOUTS))))
    num_sets = num_sets_for(draw, batch)
    names = None
    if fault == "x_dtype":
        x = x.to(draw(st.sampled_from(WRONG_DTYPES)))
        names = ("x",)
    elif fault == "x_0d":
        x = torch.tensor(1.0, dtype=dtype)
        names = ("x",)
    elif fault == "x_empty":
        x = torch.zeros((0,) + sample, dtype=dtype)
        names = ("x",)
    elif fault == "num_sets":
        num_sets = bad_num_sets(draw, batch)
        names = ("num_sets",)
    return x, num_sets, names


@FUZZ
@given(case=set_mean_cases())
def test_fuzz_set_mean_op(emulated, case):
    x, num_sets, names = case
    check_op(emulated, "set_mean", (x, num_sets), names, lambda: set_mean_reference(x.double(), num_sets), x.dtype)


@FUZZ
@given(
    case=set_mean_cases(),
    set_size=st.one_of(st.none(), st.integers(1, 8), wrong_int()),
    num_sets_arg=st.one_of(st.none(), st.integers(1, 8), wrong_int()),
)
def test_fuzz_set_mean_function_and_module(case, set_size, num_sets_arg):
    x, num_sets, names = case
    with time_bound("set_mean_function"):
        if names is not None:
            expect_error(lambda: bg.set_mean(x, num_sets), names)
        else:
            assert_matches(bg.set_mean(x, num_sets), set_mean_reference(x.double(), num_sets), x.dtype)
        if set_size is not None and (
            isinstance(set_size, bool) or not isinstance(set_size, int) or not 1 <= set_size < 2**63
        ):
            expect_error(lambda: bg.SetMean(set_size=set_size), ("set_size",))
            return
        if num_sets_arg is not None and (
            isinstance(num_sets_arg, bool) or not isinstance(num_sets_arg, int) or not 1 <= num_sets_arg < 2**63
        ):
            expect_error(lambda: bg.SetMean(num_sets=num_sets_arg), ("num_sets",))
            return
        if set_size is not None and num_sets_arg is not None:
            expect_error(lambda: bg.SetMean(set_size, num_sets_arg), ("set_size", "num_sets"))
            return
        if names is not None:
            return
        module = bg.SetMean(set_size, num_sets_arg)
        batch = x.shape[0]
        if set_size is not None:
            g = batch // set_size if batch % set_size == 0 else None
            names = ("set_size",)
        else:
            g = num_sets_arg or 1
            g = g if batch % g == 0 else None
            names = ("num_sets",)
        if g is None:
            expect_error(lambda: module(x), names)
        else:
            assert_matches(module(x), set_mean_reference(x.double(), g), x.dtype)


# --------------------------------------------------------------------------------------------
# equivariant_linear

LINEAR_FAULTS = faults(
    "x_dtype",
    "x_shape",
    "x_empty",
    "weight",
    "weight_gamma",
    "weight_dtype",
    "bias",
    "num_sets",
    "activation",
    "negative_slope",
    valid=4,
)


@st.composite
def linear_cases(draw):
    fault = draw(LINEAR_FAULTS)
    batch = draw(st.integers(1, 8))
    fin = draw(st.integers(0, 6))
    fout = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from(FLOATS))
    x = draw(values((batch, fin), dtype, draw(st.sampled_from(LAYOUTS))))
    w = draw(values((fout, fin), dtype, draw(st.sampled_from(LAYOUTS)), specials=False, scale=0.5))
    wg = draw(values((fout, fin), dtype, "contiguous", specials=False, scale=0.5))
    bias = draw(st.one_of(st.none(), values((fout,), dtype, "contiguous", specials=False)))
    num_sets = num_sets_for(draw, batch)
    activation = draw(st.sampled_from(ACTIVATIONS))
    slope = draw(st.sampled_from([0.0, 0.01, 0.2, 1.0, 3.0]))
    names = None
    if fault == "x_dtype":
        x = x.to(draw(st.sampled_from(WRONG_DTYPES)))
        names = ("x",)
    elif fault == "x_shape":
        x = draw(st.sampled_from([x.reshape(batch, fin, 1), x.reshape(-1)]))
        names = ("x",)
    elif fault == "x_empty":
        x = torch.zeros(0, fin, dtype=dtype)
        names = ("x",)
    elif fault == "weight":
        w = draw(st.sampled_from([torch.zeros(fout, fin + 1, dtype=dtype), torch.zeros(fout, fin, 1, dtype=dtype)]))
        names = ("weight",)
    elif fault == "weight_gamma":
        wg = torch.zeros(fout + 1, fin, dtype=dtype)
        names = ("weight_gamma",)
    elif fault == "weight_dtype":
        w = w.to(draw(st.sampled_from([d for d in FLOATS + WRONG_DTYPES if d != dtype])))
        names = ("weight",)
    elif fault == "bias":
        bias = draw(
            st.sampled_from(
                [
                    torch.zeros(fout + 1, dtype=dtype),
                    torch.zeros(fout, 1, dtype=dtype),
                    torch.zeros(fout, dtype=torch.int64),
                ]
            )
        )
        names = ("bias",)
    elif fault == "num_sets":
        num_sets = bad_num_sets(draw, batch)
        names = ("num_sets",)
    elif fault == "activation":
        activation = draw(st.sampled_from(["", "ReLU", "tanh", "leaky-relu"]))
        names = ("activation",)
    elif fault == "negative_slope":
        activation = "leaky_relu"
        slope = draw(st.sampled_from([-0.01, float("nan"), float("inf"), -float("inf")]))
        names = ("negative_slope",)
    return x, w, wg, bias, num_sets, activation, slope, names


def _double(*tensors):
    """The float64 copies the naive references take (None stays None)."""
    return [t.double() if t is not None else None for t in tensors]


def _linear_expected(x, w, wg, bias, num_sets, activation, slope):
    return equivariant_linear_reference(
        *_double(x, w, wg, bias), num_sets=num_sets, activation=activation, negative_slope=slope
    )


@FUZZ
@given(case=linear_cases())
# leaky_relu with slope 0 is relu: -inf gives 0, not -inf * 0 = NaN.
@example(
    case=(torch.tensor([[float("-inf")], [1.0]]), torch.ones(2, 1), torch.zeros(2, 1), None, 2, "leaky_relu", 0.0, None)
)
def test_fuzz_equivariant_linear_op(emulated, case):
    x, w, wg, bias, num_sets, activation, slope, names = case
    args = (x, w, wg, bias, num_sets, activation, slope)
    check_op(emulated, "equivariant_linear", args, names, lambda: _linear_expected(*args), x.dtype, PRODUCT_TOLERANCES)


@st.composite
def layer_wrapper_faults(draw):
    return draw(
        st.sampled_from(
            [
                None,
                None,
                ("num_sets", draw(wrong_int())),
                ("activation", draw(st.sampled_from([None, 1, b"relu"]))),
                ("negative_slope", draw(st.sampled_from(NON_REALS))),
            ]
        )
    )


@FUZZ
@given(case=linear_cases(), wrong=layer_wrapper_faults())
def test_fuzz_equivariant_linear_function(case, wrong):
    x, w, wg, bias, num_sets, activation, slope, names = case
    with time_bound("equivariant_linear_function"):
        kwargs = dict(num_sets=num_sets, activation=activation, negative_slope=slope)
        if wrong is not None:
            kwargs[wrong[0]] = wrong[1]
            names = (wrong[0],) + (names or ())
        if names is not None:
            expect_error(lambda: bg.equivariant_linear(x, w, wg, bias, **kwargs), names)
            return
        got = bg.equivariant_linear(x, w, wg, bias, **kwargs)
        assert_matches(got, _linear_expected(x, w, wg, bias, num_sets, activation, slope), x.dtype, PRODUCT_TOLERANCES)


@st.composite
def layer_module_args(draw):
    """Constructor arguments of the equivariant modules, valid or with one wrong."""
    kw = dict(
        set_size=None,
        num_sets=None,
        activation=draw(st.sampled_from(ACTIVATIONS)),
        negative_slope=draw(st.sampled_from([0.0, 0.2])),
        bias=draw(st.booleans()),
    )
    kind = draw(st.sampled_from(["sets", "size", "none"]))
    if kind == "sets":
        kw["num_sets"] = draw(st.integers(1, 4))
    elif kind == "size":
        kw["set_size"] = draw(st.integers(1, 4))
    fault = draw(
        st.sampled_from([None, None, None, "set_size", "num_sets", "both", "activation", "negative_slope", "bias"])
    )
    names = None
    if fault in ("set_size", "num_sets"):
        kw[fault] = draw(st.sampled_from([v for v in NON_INTS if v is not None] + [0, -3]))
        kw["num_sets" if fault == "set_size" else "set_size"] = None
        names = (fault,)
    elif fault == "both":
        kw["set_size"], kw["num_sets"] = 2, 2
        names = ("set_size", "num_sets")
    elif fault == "activation":
        kw["activation"] = draw(st.sampled_from(["tanh", None, 2]))
        names = ("activation",)
    elif fault == "negative_slope":
        kw["activation"] = "leaky_relu"
        kw["negative_slope"] = draw(st.sampled_from([-1.0, float("nan"), "0.1", None, True]))
        names = ("negative_slope",)
    elif fault == "bias":
        kw["bias"] = draw(st.sampled_from(NON_BOOLS))
        names = ("bias",)
    return kw, names


def _module_sets(kw, batch):
    """The set count a module uses for a batch, or None when the batch does not split."""
    if kw["set_size"] is not None:
        return batch // kw["set_size"] if batch % kw["set_size"] == 0 else None
    g = kw["num_sets"] or 1
    return g if batch % g == 0 else None


def _check_layer(layer, x, kw, reference, **options):
    """A module built with the arguments `kw` on x: the op's naive `reference` (with `options`) at the
    module's weights and set count, or an error naming the set argument when the batch does not split."""
    num_sets = _module_sets(kw, x.shape[0])
    if num_sets is None:
        expect_error(lambda: layer(x), ("set_size", "num_sets"))
        return
    bias = None if layer.bias is None else layer.bias.detach()
    want = reference(
        *_double(x, layer.weight.detach(), layer.weight_gamma.detach(), bias),
        num_sets=num_sets,
        activation=kw["activation"],
        negative_slope=kw["negative_slope"],
        **options,
    )
    assert_matches(layer(x).detach(), want, x.dtype, PRODUCT_TOLERANCES)


@FUZZ
@given(
    args=layer_module_args(),
    batch=st.integers(1, 8),
    fin=st.integers(0, 4),
    fout=st.integers(0, 4),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_fuzz_equivariant_linear_module(args, batch, fin, fout, dtype, seed):
    kw, names = args
    with time_bound("EquivariantLinear"):
        if fin == 0 or fout == 0:
            names = (names or ()) + (("in_features",) if fin == 0 else ("out_features",))
        if names is not None:
            expect_error(lambda: bg.EquivariantLinear(fin, fout, dtype=dtype, **kw), names)
            return
        torch.manual_seed(seed)
        layer = bg.EquivariantLinear(fin, fout, dtype=dtype, **kw)
        _check_layer(layer, torch.randn(batch, fin, dtype=dtype), kw, equivariant_linear_reference)


# --------------------------------------------------------------------------------------------
# equivariant_conv2d

CONV_FAULTS = faults(
    "x_dtype",
    "x_shape",
    "x_empty",
    "x_small",
    "weight",
    "weight_gamma",
    "bias",
    "stride",
    "padding",
    "dilation",
    "groups",
    "num_sets",
    "activation",
    "negative_slope",
    valid=4,
)


def _conv_out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def conv_cases(draw):
    fault = draw(CONV_FAULTS)
    batch = draw(st.integers(1, 4))
    groups = draw(st.sampled_from([1, 1, 2, 3]))  # nn.Conv2d's channel groups
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h_min = max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0])
    w_min = max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1])
    h, w = draw(st.integers(h_min, h_min + 3)), draw(st.integers(w_min, w_min + 3))
    dtype = draw(st.sampled_from(FLOATS))
    x = draw(values((batch, cin, h, w), dtype, draw(st.sampled_from(LAYOUTS))))
    wl = draw(values((cout, cin // groups, kh, kw), dtype, draw(st.sampled_from(LAYOUTS)), specials=False, scale=0.5))
    wg = draw(values((cout, cin // groups, kh, kw), dtype, "contiguous", specials=False, scale=0.5))
    bias = draw(st.one_of(st.none(), values((cout,), dtype, "contiguous", specials=False)))
    num_sets = num_sets_for(draw, batch)
    activation = draw(st.sampled_from(ACTIVATIONS))
    slope = draw(st.sampled_from([0.0, 0.01, 0.2, 1.0]))
    names = None
    if fault == "x_dtype":
        x = x.to(draw(st.sampled_from(WRONG_DTYPES)))
        names = ("x",)
    elif fault == "x_shape":
        x = draw(st.sampled_from([x[0], x.unsqueeze(0)]))
        names = ("x",)
    elif fault == "x_empty":
        x = torch.zeros(0, cin, h, w, dtype=dtype)
        names = ("x",)
    elif fault == "x_small":
        # The padded input is smaller than the dilated kernel: no output position.
        kh = kw = 3
        wl = torch.zeros(cout, cin // groups, 3, 3, dtype=dtype)
        wg = torch.zeros(cout, cin // groups, 3, 3, dtype=dtype)
        padding, dilation = (0, 0), (1, 1)
        x = torch.zeros(batch, cin, draw(st.integers(1, 2)), w + 2, dtype=dtype)
        names = ("x", "weight")
    elif fault == "weight":
        wl = draw(
            st.sampled_from(
                [
                    torch.zeros(cout, cin // groups + 1, kh, kw, dtype=dtype),
                    torch.zeros(cout, cin // groups, kh, dtype=dtype),
                ]
            )
        )
        names = ("weight",)
    elif fault == "weight_gamma":
        wg = torch.zeros(cout, cin // groups, kh + 1, kw, dtype=dtype)
        names = ("weight_gamma",)
    elif fault == "bias":
        bias = torch.zeros(cout + 1, dtype=dtype)
        names = ("bias",)
    elif fault == "stride":
        stride = draw(st.sampled_from([(0, 1), (1, -1), (0, 0)]))
        names = ("stride",)
    elif fault == "padding":
        padding = draw(st.sampled_from([(-1, 0), (0, -2)]))
        names = ("padding",)
    elif fault == "dilation":
        dilation = draw(st.sampled_from([(0, 1), (1, 0), (-1, 1)]))
        names = ("dilation",)
    elif fault == "groups":
        # 0, negative, or a count that does not divide the channels (cin + 1 never divides cin).
        groups = draw(st.sampled_from([0, -1, cin + 1]))
        names = ("groups",)
    elif fault == "num_sets":
        num_sets = bad_num_sets(draw, batch)
        names = ("num_sets",)
    elif fault == "activation":
        activation = draw(st.sampled_from(["", "gelu"]))
        names = ("activation",)
    elif fault == "negative_slope":
        activation = "leaky_relu"
        slope = draw(st.sampled_from([-0.5, float("nan"), float("inf")]))
        names = ("negative_slope",)
    return x, wl, wg, bias, list(stride), list(padding), list(dilation), groups, num_sets, activation, slope, names


def _conv_options(stride, padding, dilation, groups, num_sets, activation, slope):
    """The keyword arguments of equivariant_conv2d and its reference, from a case's positional ones."""
    return dict(
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        num_sets=num_sets,
        activation=activation,
        negative_slope=slope,
    )


def _conv_expected(x, wl, wg, bias, *options):
    return equivariant_conv2d_reference(*_double(x, wl, wg, bias), **_conv_options(*options))


@FUZZ
@given(case=conv_cases())
def test_fuzz_equivariant_conv2d_op(emulated, case):
    *args, names = case
    check_op(
        emulated, "equivariant_conv2d", args, names, lambda: _conv_expected(*args), args[0].dtype, PRODUCT_TOLERANCES
    )


@FUZZ
@given(
    case=conv_cases(),
    wrong=layer_wrapper_faults(),
    pair_fault=st.sampled_from([None, None, None, "stride", "padding", "dilation", "groups"]),
    pair_value=st.sampled_from([2.5, "1", (1, 2, 3), (1.0, 1), None, True, 2**70]),
)
def test_fuzz_equivariant_conv2d_function(case, wrong, pair_fault, pair_value):
    x, wl, wg, bias, stride, padding, dilation, groups, num_sets, activation, slope, names = case
    with time_bound("equivariant_conv2d_function"):
        kwargs = _conv_options(stride, padding, dilation, groups, num_sets, activation, slope)
        if wrong is not None:
            kwargs[wrong[0]] = wrong[1]
            names = (wrong[0],) + (names or ())
        elif pair_fault is not None:
            kwargs[pair_fault] = pair_value
            names = (pair_fault,) + (names or ())
        if names is not None:
            expect_error(lambda: bg.equivariant_conv2d(x, wl, wg, bias, **kwargs), names)
            return
        got = bg.equivariant_conv2d(x, wl, wg, bias, **kwargs)
        expected = _conv_expected(x, wl, wg, bias, stride, padding, dilation, groups, num_sets, activation, slope)
        assert_matches(got, expected, x.dtype, PRODUCT_TOLERANCES)


@FUZZ
@given(
    args=layer_module_args(),
    batch=st.integers(1, 6),
    cin=st.integers(1, 3),
    cout=st.integers(1, 3),
    kernel=st.one_of(st.integers(1, 3), st.sampled_from([0, -1, 2.5, (1, 2), (0, 1), "3", None])),
    seed=st.integers(0, 2**31 - 1),
    channels_last=st.booleans(),
)
def test_fuzz_equivariant_conv2d_module(args, batch, cin, cout, kernel, seed, channels_last):
    kw, names = args
    with time_bound("EquivariantConv2d"):
        bad_kernel = not (isinstance(kernel, int) and not isinstance(kernel, bool) and kernel >= 1) and kernel != (1, 2)
        if names is None and bad_kernel:
            names = ("kernel_size",)
        if names is not None:
            expect_error(lambda: bg.EquivariantConv2d(cin, cout, kernel, padding=1, **kw), names)
            return
        torch.manual_seed(seed)
        layer = bg.EquivariantConv2d(cin, cout, kernel, padding=1, dtype=torch.float64, **kw)
        x = torch.randn(batch, cin, 4, 5, dtype=torch.float64)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        _check_layer(
            layer,
            x,
            kw,
            equivariant_conv2d_reference,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
        )
