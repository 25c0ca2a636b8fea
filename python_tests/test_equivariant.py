"""Permutation-equivariant layers: equivariant_conv2d, equivariant_linear, set_mean, their
modules and make_equivariant (BGAN paper, section 4, eq. 10-12)."""

import copy
import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

import batchgan_ext as bg
from batchgan_ext._reference.equivariant import (
    activation_reference,
    equivariant_conv2d_reference,
    equivariant_linear_reference,
    set_mean_reference,
)

from conftest import FLOAT_DTYPES, TOLERANCES

ACTIVATIONS = [("identity", 0.01), ("relu", 0.0), ("leaky_relu", 0.1)]

# Products run in the backend in the input dtype (fp16/bf16 convs round partial sums), so the
# tolerances against a float64 reference are wider than conftest's single-rounding ones.
PRODUCT_TOL = {
    torch.float64: dict(rtol=1e-9, atol=1e-9),
    torch.float32: dict(rtol=1e-4, atol=1e-4),
    torch.float16: dict(rtol=1e-2, atol=1e-2),
    torch.bfloat16: dict(rtol=5e-2, atol=5e-2),
}

# (N, G, C_in, C_out, H, W, kernel, stride, padding, dilation)
CONV_CASES = [
    (4, 1, 3, 5, 8, 8, 3, 1, 1, 1),
    (6, 3, 2, 4, 7, 5, 3, 2, 1, 1),  # odd sizes, stride 2
    (5, 5, 3, 2, 6, 6, 4, 2, 1, 1),  # size-1 sets
    (6, 2, 4, 3, 9, 7, (3, 1), (1, 2), (2, 0), (1, 2)),
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 1),
    (8, 2, 5, 7, 4, 4, 4, 2, 1, 1),
]


# The same with nn.Conv2d's channel groups last: (..., dilation, groups).
GROUPED_CONV_CASES = [
    (4, 2, 4, 6, 6, 6, 3, 1, 1, 1, 2),
    (6, 3, 8, 4, 5, 7, 3, 2, 1, 1, 4),
    (4, 1, 4, 8, 5, 5, (3, 1), 1, (1, 0), (2, 1), 4),  # depthwise with channel multiplier 2
]


def _conv_inputs(case, dtype, bias=True, requires_grad=False):
    n, g, cin, cout, h, w, k, stride, padding, dilation = case[:10]
    groups = case[10] if len(case) > 10 else 1
    kh, kw = (k, k) if isinstance(k, int) else k
    scale = 1 / math.sqrt(cin // groups * kh * kw)
    x = torch.randn(n, cin, h, w, dtype=torch.float64)
    wl = torch.randn(cout, cin // groups, kh, kw, dtype=torch.float64) * scale
    wg = torch.randn(cout, cin // groups, kh, kw, dtype=torch.float64) * scale
    b = torch.randn(cout, dtype=torch.float64) if bias else None
    tensors = [t.to(dtype).requires_grad_(requires_grad) if t is not None else None for t in (x, wl, wg, b)]
    return tensors, dict(stride=stride, padding=padding, dilation=dilation, groups=groups, num_sets=g)


def _pairs(**kw):
    """kw in the schema's order, stride/padding/dilation as pairs."""
    return {
        k: (v if k in ("groups", "num_sets") else (v, v) if isinstance(v, int) else tuple(v)) for k, v in kw.items()
    }


def _act64(t):
    return None if t is None else t.detach().double().requires_grad_(t.requires_grad)


# --------------------------------------------------------------------------------------------
# values and gradients against the references


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_matches_reference(dtype, case, activation, slope, bias):
    (x, wl, wg, b), kw = _conv_inputs(case, dtype, bias)
    out = bg.equivariant_conv2d(x, wl, wg, b, activation=activation, negative_slope=slope, **kw)
    expected = equivariant_conv2d_reference(
        *map(_act64, (x, wl, wg, b)), activation=activation, negative_slope=slope, **kw
    )
    assert out.dtype == dtype and out.shape == expected.shape
    torch.testing.assert_close(out.double(), expected, **PRODUCT_TOL[dtype])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("n, g, fin, fout", [(4, 1, 3, 5), (6, 3, 7, 2), (5, 5, 4, 4), (1, 1, 1, 1), (12, 4, 33, 17)])
@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_reference(dtype, n, g, fin, fout, activation, slope, bias):
    x = torch.randn(n, fin, dtype=torch.float64).to(dtype)
    wl = (torch.randn(fout, fin, dtype=torch.float64) / math.sqrt(fin)).to(dtype)
    wg = (torch.randn(fout, fin, dtype=torch.float64) / math.sqrt(fin)).to(dtype)
    b = torch.randn(fout, dtype=torch.float64).to(dtype) if bias else None
    out = bg.equivariant_linear(x, wl, wg, b, g, activation, slope)
    expected = equivariant_linear_reference(
        *map(_act64, (x, wl, wg, b)), num_sets=g, activation=activation, negative_slope=slope
    )
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), expected, **PRODUCT_TOL[dtype])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape, num_sets", [((6, 3, 5, 5), 3), ((7,), 7), ((4, 1030), 2), ((9, 2, 3), 1), ((1, 4), 1)])
def test_set_mean_matches_reference(dtype, shape, num_sets):
    x = torch.randn(shape, dtype=torch.float64).to(dtype)
    out = bg.set_mean(x, num_sets)
    expected = set_mean_reference(x.double(), num_sets)
    assert out.dtype == dtype and out.shape == expected.shape
    # float32+ accumulation, one rounding to the output dtype.
    torch.testing.assert_close(out.double(), expected, **TOLERANCES[dtype])


def test_bfloat16_results_are_rounded_as_torch_rounds():
    """The CPU kernels' float -> bfloat16 conversion (common/cpu_convert.h, branch-free so that it
    vectorises) gives torch's bits: round to nearest even, ties included; NaN stays NaN (c10 writes
    0x7FC0 for every NaN, ATen's vectorised conversion keeps the payload, so only NaN-ness is compared)."""
    # set_mean's backward is grad * (1/S) in float32 and one rounding, as torch computes it; the
    # input holds every bfloat16 bit pattern (infinities and NaN payloads included).
    grad = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16).reshape(1024, 64)
    out = torch.ops.batchgan._set_mean_backward(grad, 3 * 1024)
    expected = (grad.float() * (1 / 3)).bfloat16().repeat_interleave(3, dim=0)
    nan = expected.isnan()
    assert nan.sum() > 0 and torch.equal(out.isnan(), nan)
    assert torch.equal(out[~nan].view(torch.int16), expected[~nan].view(torch.int16))
    assert torch.equal(out[nan].view(torch.int16).unique(), torch.tensor([0x7FC0], dtype=torch.int16))
    # Ties: the epilogue's z = conv(1, 1) + bias lies halfway between two bfloat16 values.
    bias = torch.tensor([2**-8, 3 * 2**-8, -(2**-9), 5 * 2**-8, float("nan")])
    z = 1.0 + bias.double()  # exact, each halfway between two bfloat16 neighbours (8 significant bits)
    x = torch.ones(2, 1, 1, 1, dtype=torch.bfloat16)
    weight = torch.ones(5, 1, 1, 1, dtype=torch.bfloat16)
    out = bg.equivariant_conv2d(x, weight, torch.zeros_like(weight), bias.bfloat16(), num_sets=1)
    expected = z.float().bfloat16()  # to even: 1, 1 + 2^-6, 1, 1 + 2^-6; NaN
    assert torch.equal(out[0, :4, 0, 0].view(torch.int16), expected[:4].view(torch.int16))
    assert out[0, 4, 0, 0].view(torch.int16).item() == 0x7FC0
    assert expected[:4].tolist() == [1.0, 1.015625, 1.0, 1.015625]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("case", CONV_CASES[:4])
@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
def test_conv2d_gradients_match_reference(dtype, case, activation, slope):
    tensors, kw = _conv_inputs(case, dtype, True, requires_grad=True)
    out = bg.equivariant_conv2d(*tensors, activation=activation, negative_slope=slope, **kw)
    grad = torch.randn(out.shape, dtype=torch.float64)
    got = torch.autograd.grad(out, tensors, grad.to(dtype))
    # The activation's derivative is taken at the kernel's own pre-activation; a float64
    # reference could disagree on the side of 0 for values within rounding of it, so it is
    # evaluated at the op's output sign by re-running the reference with a matching mask.
    ref_in = [_act64(t) for t in tensors]
    ref = equivariant_conv2d_reference(*ref_in, activation="identity", **kw)
    if activation != "identity":
        ref = torch.where(out.detach().double() > 0, ref, ref * slope)
    expected = torch.autograd.grad(ref, ref_in, grad)
    for name, a, e in zip(("x", "weight", "weight_gamma", "bias"), got, expected):
        assert a.dtype == dtype, name
        tol = PRODUCT_TOL[dtype] if dtype != torch.bfloat16 else dict(rtol=0.1, atol=0.3)
        torch.testing.assert_close(a.double(), e, **tol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
def test_linear_gradients_match_reference(dtype, activation, slope):
    x = torch.randn(12, 9, dtype=dtype, requires_grad=True)
    params = [torch.randn(5, 9, dtype=dtype, requires_grad=True) for _ in range(2)]
    b = torch.randn(5, dtype=dtype, requires_grad=True)
    out = bg.equivariant_linear(x, *params, b, 3, activation, slope)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, *params, b), grad)
    ref = equivariant_linear_reference(x, *params, b, num_sets=3, activation=activation, negative_slope=slope)
    expected = torch.autograd.grad(ref, (x, *params, b), grad)
    for a, e in zip(got, expected):
        torch.testing.assert_close(a, e, **PRODUCT_TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fin", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("n, g, fout", [(12, 3, 37), (7, 1, 1030), (5, 5, 16), (1, 1, 3)])
@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
def test_linear_few_input_features_match_reference(dtype, fin, n, g, fout, activation, slope):
    # in_features <= 4 take the CPU's fused small-K path (product inside the passes, output
    # features split over tasks: 1030 is not a multiple of the chunk); 5 takes the GEMM path.
    x = torch.randn(n, fin, dtype=torch.float64)
    wl, wg = (torch.randn(fout, fin, dtype=torch.float64) / math.sqrt(fin) for _ in range(2))
    b = torch.randn(fout, dtype=torch.float64)
    tensors = [t.to(dtype).requires_grad_() for t in (x, wl, wg, b)]
    out = bg.equivariant_linear(*tensors, g, activation, slope)
    grad = torch.randn(out.shape, dtype=torch.float64)
    got = torch.autograd.grad(out, tensors, grad.to(dtype))
    ref_in = [_act64(t) for t in tensors]
    ref = equivariant_linear_reference(*ref_in, num_sets=g, activation="identity")
    tol = PRODUCT_TOL[dtype] if dtype not in (torch.float16, torch.bfloat16) else dict(rtol=0.05, atol=0.1)
    torch.testing.assert_close(out.double(), activation_reference(ref.detach(), activation, slope), **tol)
    if activation != "identity":  # act' at the op's own output sign (see the conv test above)
        ref = torch.where(out.detach().double() > 0, ref, ref * slope)
    expected = torch.autograd.grad(ref, ref_in, grad)
    for name, a, e in zip(("x", "weight", "weight_gamma", "bias"), got, expected):
        assert a.dtype == dtype, name
        torch.testing.assert_close(a.double(), e, **tol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[2], CONV_CASES[3]])
def test_conv2d_gradcheck(activation, slope, bias, case):
    (x, wl, wg, b), kw = _conv_inputs(case, torch.float64, bias, requires_grad=True)
    inputs = tuple(t for t in (x, wl, wg, b) if t is not None)

    def fn(*args):
        bb = args[3] if bias else None
        return bg.equivariant_conv2d(args[0], args[1], args[2], bb, activation=activation, negative_slope=slope, **kw)

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
@pytest.mark.parametrize("n, g", [(6, 2), (4, 4), (5, 1)])
def test_linear_gradcheck_and_gradgradcheck(activation, slope, n, g):
    # gradgradcheck: create_graph=True takes the differentiable backward (equivariant_autograd.cpp).
    x = torch.randn(n, 4, dtype=torch.float64, requires_grad=True)
    wl, wg = (torch.randn(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    fn = lambda *a: bg.equivariant_linear(*a, g, activation, slope)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, wl, wg, b))
    assert torch.autograd.gradgradcheck(fn, (x, wl, wg, b))


def test_set_mean_gradcheck_and_gradgradcheck():
    x = torch.randn(6, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: bg.set_mean(t, 3), (x,))
    assert torch.autograd.gradgradcheck(lambda t: bg.set_mean(t, 3), (x,))


@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
@pytest.mark.parametrize("case", [CONV_CASES[1]])
def test_conv2d_gradgradcheck(activation, slope, case):
    # create_graph=True takes the differentiable backward (autograd/equivariant_autograd.cpp).
    (x, wl, wg, b), kw = _conv_inputs(case, torch.float64, True, requires_grad=True)
    fn = lambda *a: bg.equivariant_conv2d(*a, activation=activation, negative_slope=slope, **kw)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (x, wl, wg, b))


@pytest.mark.parametrize("case", GROUPED_CONV_CASES)
@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
def test_conv2d_channel_groups_match_reference(case, activation, slope):
    # groups is nn.Conv2d's: both products (Lambda on x, Gamma on the set means) are grouped.
    (x, wl, wg, b), kw = _conv_inputs(case, torch.float64, True, requires_grad=True)
    out = bg.equivariant_conv2d(x, wl, wg, b, activation=activation, negative_slope=slope, **kw)
    expected = equivariant_conv2d_reference(x, wl, wg, b, activation=activation, negative_slope=slope, **kw)
    torch.testing.assert_close(out, expected, **PRODUCT_TOL[torch.float64])
    fn = lambda *a: bg.equivariant_conv2d(*a, activation=activation, negative_slope=slope, **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, wl, wg, b))


def test_conv2d_channel_groups_gradgradcheck():
    (x, wl, wg, b), kw = _conv_inputs(GROUPED_CONV_CASES[0], torch.float64, True, requires_grad=True)
    fn = lambda *a: bg.equivariant_conv2d(*a, activation="leaky_relu", negative_slope=0.1, **kw)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (x, wl, wg, b))


def test_conv2d_module_channel_groups():
    # nn.Conv2d's positional order: in, out, kernel_size, stride, padding, dilation, groups, bias.
    conv = bg.EquivariantConv2d(4, 8, 3, 1, 1, 1, 4, False, num_sets=2, dtype=torch.float64)
    assert conv.weight.shape == conv.weight_gamma.shape == (8, 1, 3, 3) and conv.bias is None
    assert "groups=4" in repr(conv)
    x = torch.randn(6, 4, 5, 5, dtype=torch.float64)
    expected = equivariant_conv2d_reference(x, conv.weight, conv.weight_gamma, None, padding=1, groups=4, num_sets=2)
    torch.testing.assert_close(conv(x), expected)
    with pytest.raises(ValueError, match="groups"):
        bg.EquivariantConv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="groups"):
        bg.EquivariantConv2d(4, 4, 3, groups=0)


def test_conv2d_bad_channel_groups():
    x = torch.randn(4, 4, 5, 5)
    with pytest.raises(RuntimeError, match="groups: expected a positive number of channel groups, got 0"):
        bg.equivariant_conv2d(x, torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3), groups=0)
    with pytest.raises(RuntimeError, match="groups: the 4 input channels of x do not split into 3 groups"):
        bg.equivariant_conv2d(x, torch.randn(3, 1, 3, 3), torch.randn(3, 1, 3, 3), groups=3)
    with pytest.raises(RuntimeError, match="groups: the 3 output channels of weight do not split into 2 groups"):
        bg.equivariant_conv2d(x, torch.randn(3, 2, 3, 3), torch.randn(3, 2, 3, 3), groups=2)
    with pytest.raises(RuntimeError, match="weight: expected 2 input channels/features per group"):
        bg.equivariant_conv2d(x, torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3), groups=2)


def test_make_equivariant_carries_channel_groups():
    disc = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.LeakyReLU(0.1), nn.Conv2d(8, 8, 3, groups=8))
    eq = bg.make_equivariant(disc, 2)
    convs = [m for m in eq.modules() if isinstance(m, bg.EquivariantConv2d)]
    assert [c.groups for c in convs] == [2, 8]
    for src, dst in zip((disc[0], disc[2]), convs):
        assert dst.weight.shape == src.weight.shape == dst.weight_gamma.shape
        torch.testing.assert_close(dst.weight, src.weight * 2 / 3)
    assert convs[0].activation == "leaky_relu"  # the LeakyReLU after it is fused into the layer
    x = torch.randn(4, 4, 6, 6)
    h = equivariant_conv2d_reference(
        x,
        convs[0].weight,
        convs[0].weight_gamma,
        convs[0].bias,
        padding=1,
        groups=2,
        num_sets=2,
        activation="leaky_relu",
        negative_slope=0.1,
    )
    h = equivariant_conv2d_reference(h, convs[1].weight, convs[1].weight_gamma, convs[1].bias, groups=8, num_sets=2)
    with torch.no_grad():
        torch.testing.assert_close(eq(x), set_mean_reference(h, 2), **PRODUCT_TOL[torch.float32])


def test_first_order_backward_uses_the_fused_op():
    # The differentiable (composite) backward is only for create_graph=True; an ordinary
    # backward runs the fused backward op.
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.add(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    wl, wg = (torch.randn(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    for create_graph in (False, True):
        out = bg.equivariant_linear(x, wl, wg, None, 2, "relu")
        with Recorder() as rec:
            torch.autograd.grad(out.pow(2).sum(), (x, wl, wg), create_graph=create_graph)
        assert ("batchgan._equivariant_linear_backward" in rec.ops) == (not create_graph), rec.ops


@pytest.mark.parametrize("layer", ["linear", "conv2d"])
def test_gradient_penalty_matches_reference(layer):
    # A WGAN-GP style penalty ||d D / d x||^2 through the layer, differentiated w.r.t. the
    # weights and x, against the pure-PyTorch formula of eq. 12.
    if layer == "linear":
        x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
        wl, wg = (torch.randn(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
        b = torch.randn(3, dtype=torch.float64, requires_grad=True)

        def fused(*a):
            return bg.equivariant_linear(*a, 2, "leaky_relu", 0.2)

        def ref(*a):
            return equivariant_linear_reference(*a, num_sets=2, activation="leaky_relu", negative_slope=0.2)
    else:
        (x, wl, wg, b), kw = _conv_inputs(CONV_CASES[1], torch.float64, True, requires_grad=True)

        def fused(*a):
            return bg.equivariant_conv2d(*a, activation="leaky_relu", negative_slope=0.2, **kw)

        def ref(*a):
            return equivariant_conv2d_reference(*a, activation="leaky_relu", negative_slope=0.2, **kw)

    inputs = (x, wl, wg, b)

    def penalty_grads(fn):
        out = fn(*inputs)
        (gx,) = torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum(), inputs)

    for a, e in zip(penalty_grads(fused), penalty_grads(ref)):
        torch.testing.assert_close(a, e, **PRODUCT_TOL[torch.float64])


def test_gradients_without_bias_and_partial_requires_grad():
    x = torch.randn(6, 4, dtype=torch.float64)
    wl = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    wg = torch.randn(3, 4, dtype=torch.float64)
    out = bg.equivariant_linear(x, wl, wg, None, 3, "relu", 0.0)
    (gw,) = torch.autograd.grad(out.sum(), (wl,))
    ref = torch.autograd.grad(equivariant_linear_reference(x, wl, wg, None, num_sets=3, activation="relu").sum(), (wl,))
    torch.testing.assert_close(gw, ref[0], **PRODUCT_TOL[torch.float64])
    # No input requires grad: no graph is recorded.
    assert not bg.equivariant_linear(x, wl.detach(), wg, None, 3).requires_grad


def test_only_requested_gradients_are_computed():
    (x, wl, wg, b), kw = _conv_inputs(CONV_CASES[1], torch.float32, True)
    wl.requires_grad_(True)
    out = bg.equivariant_conv2d(x, wl, wg, b, **kw)
    (gw,) = torch.autograd.grad(out.sum(), (wl,))
    ref = torch.autograd.grad(equivariant_conv2d_reference(x, wl, wg, b, **kw).sum(), (wl,))[0]
    torch.testing.assert_close(gw, ref, **PRODUCT_TOL[torch.float32])
    p = _pairs(**kw)
    grads = torch.ops.batchgan._equivariant_conv2d_backward(
        torch.ones_like(out),
        out.detach(),
        x,
        bg.set_mean(x, p["num_sets"]),
        wl.detach(),
        wg,
        True,
        *p.values(),
        "identity",
        0.0,
        [False, True, False, False],
    )
    assert grads[0].shape == (0,) and grads[2].shape == (0,) and grads[3].shape == (0,)


# --------------------------------------------------------------------------------------------
# opcheck and torch.compile


def _opcheck_cases():
    (x, wl, wg, b), kw = _conv_inputs(CONV_CASES[1], torch.float32, True)
    p = _pairs(**kw)
    conv_args = (x, wl, wg, b, p["stride"], p["padding"], p["dilation"], 1, p["num_sets"], "leaky_relu", 0.2)
    (xq, wq, wgq, bq), kwq = _conv_inputs(GROUPED_CONV_CASES[1], torch.float32, True)
    q = _pairs(**kwq)
    grouped_args = (xq, wq, wgq, bq, *q.values(), "relu", 0.0)
    qout = torch.ops.batchgan.equivariant_conv2d(*grouped_args)
    qm = torch.ops.batchgan.set_mean(xq, q["num_sets"])
    out = torch.ops.batchgan.equivariant_conv2d(*conv_args)
    xl = torch.randn(6, 5)
    wll, wlg = torch.randn(4, 5), torch.randn(4, 5)
    bl = torch.randn(4)
    lin_args = (xl, wll, wlg, bl, 2, "relu", 0.0)
    lout = torch.ops.batchgan.equivariant_linear(*lin_args)
    xm = torch.ops.batchgan.set_mean(x, p["num_sets"])
    xlm = torch.ops.batchgan.set_mean(xl, 2)
    return [
        ("equivariant_conv2d", conv_args),
        ("equivariant_conv2d", (x, wl, wg, None, p["stride"], p["padding"], p["dilation"], 1, 1, "identity", 0.0)),
        (
            "equivariant_conv2d",
            (
                x.to(memory_format=torch.channels_last),
                wl,
                wg,
                b,
                p["stride"],
                p["padding"],
                p["dilation"],
                1,
                3,
                "relu",
                0.0,
            ),
        ),
        ("_equivariant_conv2d_forward", conv_args),
        (
            "_equivariant_conv2d_backward",
            (
                torch.randn(out.shape),
                out,
                x,
                xm,
                wl,
                wg,
                True,
                p["stride"],
                p["padding"],
                p["dilation"],
                1,
                p["num_sets"],
                "leaky_relu",
                0.2,
                [True, True, True, True],
            ),
        ),
        (
            "_equivariant_conv2d_backward",
            (
                torch.randn(out.shape),
                out,
                x,
                xm,
                wl,
                wg,
                False,
                p["stride"],
                p["padding"],
                p["dilation"],
                1,
                p["num_sets"],
                "leaky_relu",
                0.2,
                [True, False, True, False],
            ),
        ),
        ("equivariant_conv2d", grouped_args),
        ("_equivariant_conv2d_forward", grouped_args),
        (
            "_equivariant_conv2d_backward",
            (torch.randn(qout.shape), qout, xq, qm, wq, wgq, True, *q.values(), "relu", 0.0, [True, True, True, True]),
        ),
        ("equivariant_linear", lin_args),
        ("equivariant_linear", (xl, wll, wlg, None, 6, "identity", 0.0)),
        ("_equivariant_linear_forward", lin_args),
        (
            "_equivariant_linear_backward",
            (torch.randn(lout.shape), lout, xl, xlm, wll, wlg, True, 2, "relu", 0.0, [True, True, True, True]),
        ),
        ("set_mean", (torch.randn(6, 3, 4), 2)),
        ("set_mean", (torch.randn(4, 3, 2, 2).to(memory_format=torch.channels_last), 4)),
        ("_set_mean_backward", (torch.randn(2, 3, 4), 6)),
    ]


@pytest.mark.parametrize("index", range(16))
def test_opcheck(index):
    name, args = _opcheck_cases()[index]
    if not name.endswith(("_backward", "_forward")):
        # Autograd registration is checked with differentiable inputs. The _forward/_backward
        # ops are the halves the public ops' autograd kernels call; they have no autograd.
        args = tuple(
            a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args
        )
    torch.library.opcheck(getattr(torch.ops.batchgan, name).default, args)


class _SmallEquivariantNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = bg.EquivariantConv2d(3, 8, 3, padding=1, set_size=4, activation="leaky_relu", negative_slope=0.1)
        self.c2 = bg.EquivariantConv2d(8, 8, 4, stride=2, padding=1, set_size=4, activation="relu")
        self.l1 = bg.EquivariantLinear(8 * 4 * 4, 1, set_size=4)
        self.pool = bg.SetMean(set_size=4)

    def forward(self, x):
        return self.pool(self.l1(self.c2(self.c1(x)).flatten(1)))


def test_torch_compile_fullgraph():
    net = _SmallEquivariantNet()
    x = torch.randn(8, 3, 8, 8, requires_grad=True)
    eager = net(x)
    eager_grads = torch.autograd.grad(eager.sum(), (x, *net.parameters()))
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    grads = torch.autograd.grad(out.sum(), (x, *net.parameters()))
    assert out.shape == (2, 1)
    torch.testing.assert_close(out, eager)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------------------------
# permutation properties


def _permute_within_sets(n, num_sets, generator):
    s = n // num_sets
    return torch.cat([g * s + torch.randperm(s, generator=generator) for g in range(num_sets)])


@pytest.mark.parametrize("num_sets", [1, 2, 4])
def test_layers_are_permutation_equivariant(num_sets):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, 6, 6, dtype=torch.float64)
    perm = _permute_within_sets(8, num_sets, gen)
    conv = bg.EquivariantConv2d(3, 4, 3, padding=1, num_sets=num_sets, activation="leaky_relu", dtype=torch.float64)
    torch.testing.assert_close(conv(x[perm]), conv(x)[perm])
    lin = bg.EquivariantLinear(5, 3, num_sets=num_sets, activation="relu", dtype=torch.float64)
    xl = torch.randn(8, 5, dtype=torch.float64)
    torch.testing.assert_close(lin(xl[perm]), lin(xl)[perm])
    # ... and the gradients permute with the inputs.
    xp = x[perm].clone().requires_grad_(True)
    x0 = x.clone().requires_grad_(True)
    w = torch.randn(8, 4, 6, 6, dtype=torch.float64)
    (conv(xp) * w[perm]).sum().backward()
    (conv(x0) * w).sum().backward()
    torch.testing.assert_close(xp.grad, x0.grad[perm])
    pool = bg.SetMean(num_sets=num_sets)
    torch.testing.assert_close(pool(x[perm]), pool(x))


def test_a_permutation_across_sets_changes_the_output():
    # The property tests above must be able to fail: moving a sample to another set changes
    # both sets' means, hence every output of those sets.
    conv = bg.EquivariantConv2d(2, 3, 3, padding=1, num_sets=2, dtype=torch.float64)
    x = torch.randn(4, 2, 5, 5, dtype=torch.float64)
    perm = torch.tensor([2, 1, 0, 3])
    assert not torch.allclose(conv(x[perm]), conv(x)[perm])


def test_sets_are_independent():
    conv = bg.EquivariantConv2d(3, 4, 3, padding=1, set_size=3, activation="relu", dtype=torch.float64)
    lin = bg.EquivariantLinear(4, 2, set_size=3, dtype=torch.float64)
    x = torch.randn(9, 3, 5, 5, dtype=torch.float64)
    x2 = x.clone()
    x2[3:6] = torch.randn(3, 3, 5, 5, dtype=torch.float64)  # change the middle set only
    y, y2 = conv(x), conv(x2)
    torch.testing.assert_close(y[:3], y2[:3])
    torch.testing.assert_close(y[6:], y2[6:])
    assert not torch.allclose(y[3:6], y2[3:6])
    xl = torch.randn(9, 4, dtype=torch.float64)
    xl2 = xl.clone()
    xl2[0] += 1
    torch.testing.assert_close(lin(xl)[3:], lin(xl2)[3:])


# --------------------------------------------------------------------------------------------
# modules: init, spectral_norm, layouts


def test_init_reweights_like_the_paper():
    # Section 4.3: Lambda~ = S/(S+1) Lambda and Gamma~ = 1/(S+1) Gamma from nn.Conv2d's init.
    torch.manual_seed(11)
    ref = nn.Conv2d(3, 5, 3)
    torch.manual_seed(11)
    eq = bg.EquivariantConv2d(3, 5, 3, set_size=4)
    torch.testing.assert_close(eq.weight, ref.weight * 4 / 5)
    bound = 1 / math.sqrt(3 * 9)
    assert eq.weight_gamma.abs().max() <= bound / 5 + 1e-7 and eq.weight_gamma.abs().max() > bound / 10
    torch.manual_seed(12)
    refl = nn.Linear(7, 2)
    torch.manual_seed(12)
    eql = bg.EquivariantLinear(7, 2, set_size=3)
    torch.testing.assert_close(eql.weight, refl.weight * 3 / 4)
    assert eql.bias.abs().max() <= 1 / math.sqrt(7)
    eql.reset_parameters(set_size=9)
    assert eql.weight_gamma.abs().max() <= 1 / math.sqrt(7) / 10 + 1e-7


def test_module_sets_from_set_size_and_groups():
    x = torch.randn(12, 4, dtype=torch.float64)
    a = bg.EquivariantLinear(4, 3, set_size=3, dtype=torch.float64)
    b = bg.EquivariantLinear(4, 3, num_sets=4, dtype=torch.float64)
    whole = bg.EquivariantLinear(4, 3, dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    whole.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x), b(x))
    expected = equivariant_linear_reference(x, a.weight, a.weight_gamma, a.bias, num_sets=1)
    torch.testing.assert_close(whole(x), expected)
    assert bg.SetMean(set_size=3)(x).shape == (4, 4) and bg.SetMean()(x).shape == (1, 4)
    assert "set_size=3" in repr(a) and "num_sets=4" in repr(b)


def test_spectral_norm_on_both_weights():
    sn = torch.nn.utils.parametrizations.spectral_norm
    conv = bg.EquivariantConv2d(3, 6, 3, padding=1, set_size=2, activation="leaky_relu", negative_slope=0.1)
    sn(conv, "weight")
    sn(conv, "weight_gamma")
    lin = sn(sn(bg.EquivariantLinear(6 * 4 * 4, 1, set_size=2), "weight"), "weight_gamma")
    x = torch.randn(4, 3, 4, 4)
    for _ in range(3):  # power iterations run in train mode
        out = lin(conv(x).flatten(1))
        out.sum().backward()
    for m in (conv, lin):
        for name in ("weight", "weight_gamma"):
            w = getattr(m, name).detach().flatten(1)
            assert abs(torch.linalg.matrix_norm(w, 2).item() - 1) < 0.1
            assert getattr(m.parametrizations, name).original.grad is not None
    conv.eval()
    expected = equivariant_conv2d_reference(
        x,
        conv.weight,
        conv.weight_gamma,
        conv.bias,
        padding=(1, 1),
        num_sets=2,
        activation="leaky_relu",
        negative_slope=0.1,
    )
    torch.testing.assert_close(conv(x), expected, **PRODUCT_TOL[torch.float32])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channels_last_and_non_contiguous_input(dtype):
    (x, wl, wg, b), kw = _conv_inputs(CONV_CASES[1], dtype, True)
    expected = bg.equivariant_conv2d(x, wl, wg, b, activation="leaky_relu", negative_slope=0.2, **kw)
    xcl = x.to(memory_format=torch.channels_last).requires_grad_(True)
    out = bg.equivariant_conv2d(xcl, wl, wg, b, activation="leaky_relu", negative_slope=0.2, **kw)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, **PRODUCT_TOL[dtype])
    x0 = x.clone().requires_grad_(True)
    grad = torch.randn_like(expected)
    out.backward(grad)
    bg.equivariant_conv2d(x0, wl, wg, b, activation="leaky_relu", negative_slope=0.2, **kw).backward(grad)
    torch.testing.assert_close(xcl.grad, x0.grad, **PRODUCT_TOL[dtype])
    # A non-contiguous view (every other column) works too.
    wide = torch.randn(x.shape[0], x.shape[1], x.shape[2], 2 * x.shape[3], dtype=dtype)
    view = wide[..., ::2]
    torch.testing.assert_close(
        bg.equivariant_conv2d(view, wl, wg, b, **kw), bg.equivariant_conv2d(view.contiguous(), wl, wg, b, **kw)
    )
    xl = torch.randn(5, 6, dtype=dtype).t()  # (6, 5), transposed
    wll, wlg = torch.randn(3, 5, dtype=dtype), torch.randn(3, 5, dtype=dtype)
    torch.testing.assert_close(
        bg.equivariant_linear(xl, wll, wlg, None, 2),
        equivariant_linear_reference(xl, wll, wlg, None, num_sets=2),
        **PRODUCT_TOL[dtype],
    )


# --------------------------------------------------------------------------------------------
# make_equivariant on an SN-GAN CIFAR-10 discriminator (Miyato et al., 2018), plain PyTorch


class SNGANDiscriminator(nn.Module):
    def __init__(self, spectral=True, width=1.0):
        super().__init__()
        sn = torch.nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        c = [3] + [max(1, int(v * width)) for v in (64, 64, 128, 128, 256, 256, 512)]
        layers = []
        for i in range(7):
            k, s = (4, 2) if i % 2 == 1 else (3, 1)
            layers += [sn(nn.Conv2d(c[i], c[i + 1], k, s, 1)), nn.LeakyReLU(0.1)]
        self.features = nn.Sequential(*layers)
        self.head = sn(nn.Linear(c[-1] * 4 * 4, 1))

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


@pytest.mark.parametrize("spectral", [False, True])
def test_make_equivariant_sngan(spectral):
    torch.manual_seed(5)
    disc = SNGANDiscriminator(spectral=spectral, width=0.125)
    set_size = 4
    eq = bg.make_equivariant(disc, set_size)
    # The original is untouched and every product layer was converted.
    assert sum(isinstance(m, nn.Conv2d) for m in disc.modules()) == 7
    assert sum(isinstance(m, nn.Conv2d) for m in eq.modules()) == 0
    convs = [m for m in eq.modules() if isinstance(m, bg.EquivariantConv2d)]
    assert len(convs) == 7 and sum(isinstance(m, bg.EquivariantLinear) for m in eq.modules()) == 1
    assert all(c.activation == "leaky_relu" and c.negative_slope == 0.1 for c in convs)
    src_convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    for src, dst in zip(src_convs, convs):
        if spectral:
            src_w = src.parametrizations.weight.original
            dst_w = dst.parametrizations.weight.original
            assert torch.nn.utils.parametrize.is_parametrized(dst, "weight_gamma")
        else:
            src_w, dst_w = src.weight, dst.weight
        torch.testing.assert_close(dst_w, src_w * set_size / (set_size + 1))
        torch.testing.assert_close(dst.bias, src.bias)
    eq.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    out = eq(x)
    assert out.shape == (2, 1)
    # Invariant to permutations within each set; the sets are scored independently.
    perm = _permute_within_sets(8, 2, gen)
    torch.testing.assert_close(eq(x[perm]), out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(eq(x[:4]), out[:1], rtol=1e-5, atol=1e-6)
    # Equals the network written with the references.
    with torch.no_grad():
        h = x
        for c in convs:
            h = equivariant_conv2d_reference(
                h,
                c.weight,
                c.weight_gamma,
                c.bias,
                c.stride,
                c.padding,
                c.dilation,
                num_sets=h.shape[0] // set_size,
                activation=c.activation,
                negative_slope=c.negative_slope,
            )
        lin = [m for m in eq.modules() if isinstance(m, bg.EquivariantLinear)][0]
        h = equivariant_linear_reference(h.flatten(1), lin.weight, lin.weight_gamma, lin.bias, num_sets=2)
        expected = set_mean_reference(h, 2)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    # Trainable end to end.
    eq.train()
    eq(x).sum().backward()
    assert all(p.grad is not None for p in eq.parameters() if p.requires_grad)


def test_make_equivariant_reduce_none_is_per_sample_and_equivariant():
    torch.manual_seed(8)
    disc = SNGANDiscriminator(spectral=False, width=0.125).double()
    set_size, n = 4, 12
    per_sample = bg.make_equivariant(disc, set_size, reduce=None).eval()
    invariant = bg.make_equivariant(disc, set_size).eval()
    assert not any(isinstance(m, bg.SetMean) for m in per_sample.modules())
    assert sum(isinstance(m, bg.SetMean) for m in invariant.modules()) == 1
    # The same converted body (same keys; Gamma is drawn fresh, so copy it over): only the reduction differs.
    assert set(per_sample.state_dict()) == set(invariant.state_dict())
    per_sample.load_state_dict(invariant.state_dict())
    x = torch.randn(n, 3, 32, 32, dtype=torch.float64)
    out = per_sample(x)
    assert out.shape == (n, 1)
    # Permuting the samples inside each set permutes the outputs the same way (eq. 12 layers, no reduction).
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        perm = _permute_within_sets(n, n // set_size, gen)
        torch.testing.assert_close(per_sample(x[perm]), out[perm], rtol=1e-10, atol=1e-12)
    # Not invariant: a sample's output depends on the sample itself, not only on its set.
    assert (out.view(-1, set_size).std(1) > 1e-6).all()
    # Sets are independent, and reduce="mean" is the set mean of these per-sample outputs (eq. 10).
    torch.testing.assert_close(per_sample(x[4:8]), out[4:8], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(invariant(x), out.view(-1, set_size, 1).mean(1), rtol=1e-10, atol=1e-12)
    # M-BGAN's loss (eq. 14) on the per-sample logits; bgan mode averages each set's logits itself,
    # which is the reduce="mean" network's loss with one logit per set.
    target = torch.tensor([0.25, 1.0, 0.5], dtype=torch.float64)
    mbgan = bg.bernoulli_kl_loss(out, target, "mbgan", num_sets=n // set_size)
    assert torch.isfinite(mbgan)
    torch.testing.assert_close(
        bg.bernoulli_kl_loss(out, target, "bgan", num_sets=n // set_size),
        bg.bernoulli_kl_loss(invariant(x), target, "bgan", num_sets=n // set_size),
    )
    per_sample.train()
    per_sample(x).sum().backward()
    assert all(p.grad is not None for p in per_sample.parameters())


def test_make_equivariant_bad_arguments():
    with pytest.raises(ValueError, match="set_size"):
        bg.make_equivariant(nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="discriminator"):
        bg.make_equivariant(nn.Sequential(nn.Conv2d(4, 4, 3, padding_mode="reflect")), 2)
    single = bg.make_equivariant(nn.Linear(3, 1), 2)
    assert single(torch.randn(6, 3)).shape == (3, 1)
    assert bg.make_equivariant(nn.Linear(3, 1), 2, reduce="mean")(torch.randn(6, 3)).shape == (3, 1)
    assert bg.make_equivariant(nn.Linear(3, 1), 2, reduce=None)(torch.randn(6, 3)).shape == (6, 1)
    for bad in ("sum", "none", "Mean", "", 0, False, ("mean",)):
        with pytest.raises(ValueError, match=r"reduce: expected 'mean' \(one output per set\) or None"):
            bg.make_equivariant(nn.Linear(3, 1), 2, reduce=bad)


# --------------------------------------------------------------------------------------------
# bad input


def _conv_call(x=None, w=None, wg=None, b="default", num_sets=1, **kw):
    x = torch.randn(4, 3, 5, 5) if x is None else x
    w = torch.randn(2, 3, 3, 3) if w is None else w
    wg = torch.randn(2, 3, 3, 3) if wg is None else wg
    b = torch.randn(2) if isinstance(b, str) else b
    return bg.equivariant_conv2d(x, w, wg, b, num_sets=num_sets, **kw)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_sets=3), "num_sets: the batch of 4 samples does not split into 3"),
        (dict(num_sets=0), "num_sets: expected a positive number"),
        (dict(x=torch.randn(0, 3, 5, 5)), "x: expected a non-empty batch"),
        (dict(x=torch.randn(3, 5, 5)), r"x: expected a 4-d batch"),
        (dict(x=torch.randint(0, 2, (4, 3, 5, 5))), "x: expected a float32"),
        (dict(w=torch.randn(2, 4, 3, 3)), "weight: expected 3 input channels"),
        (dict(w=torch.randn(2, 3, 3)), "weight: expected a 4-d tensor"),
        (dict(wg=torch.randn(2, 3, 1, 1)), "weight_gamma: expected the shape of weight"),
        (dict(w=torch.randn(2, 3, 3, 3).double()), "weight: expected the dtype of x"),
        (dict(wg=torch.randn(2, 3, 3, 3).half()), "weight_gamma: expected the dtype of x"),
        (dict(b=torch.randn(3)), r"bias: expected shape \(2,\)"),
        (dict(b=torch.randn(2, device="meta")), "bias: expected a tensor on the same device"),
        (dict(activation="gelu"), "activation: expected 'identity', 'relu' or 'leaky_relu'"),
        (dict(activation="leaky_relu", negative_slope=-0.1), "negative_slope: expected a finite value >= 0"),
        (dict(stride=0), "stride: expected two positive integers"),
        (dict(padding=-1), "padding: expected two non-negative integers"),
    ],
)
def test_conv2d_bad_input(kwargs, message):
    with pytest.raises(RuntimeError, match=message):
        _conv_call(**kwargs)


@pytest.mark.parametrize(
    "x, w, wg, num_sets, message",
    [
        (torch.randn(6, 4), torch.randn(3, 4), torch.randn(3, 4), 4, "num_sets: the batch of 6 samples"),
        (torch.randn(6, 4, 1), torch.randn(3, 4), torch.randn(3, 4), 1, "x: expected a 2-d batch"),
        (torch.randn(6, 4), torch.randn(3, 5), torch.randn(3, 5), 1, "weight: expected 4 input"),
        (torch.randn(6, 4), torch.randn(3, 4), torch.randn(2, 4), 1, "weight_gamma: expected the shape of weight"),
        (torch.randn(0, 4), torch.randn(3, 4), torch.randn(3, 4), 1, "x: expected a non-empty batch"),
    ],
)
def test_linear_bad_input(x, w, wg, num_sets, message):
    with pytest.raises(RuntimeError, match=message):
        bg.equivariant_linear(x, w, wg, None, num_sets)


def test_module_and_set_mean_bad_input():
    with pytest.raises(ValueError, match="set_size: the batch of 10 samples does not split into sets of 4"):
        bg.EquivariantLinear(3, 2, set_size=4)(torch.randn(10, 3))
    with pytest.raises(ValueError, match="set_size: the batch of 6 samples"):
        bg.SetMean(set_size=4)(torch.randn(6, 2))
    with pytest.raises(ValueError, match="set_size, num_sets: give at most one"):
        bg.EquivariantConv2d(3, 2, 3, set_size=2, num_sets=2)
    with pytest.raises(ValueError, match="activation"):
        bg.EquivariantLinear(3, 2, activation="tanh")
    with pytest.raises(ValueError, match="set_size: expected a positive integer"):
        bg.EquivariantLinear(3, 2, set_size=0)
    with pytest.raises(RuntimeError, match="x: expected a non-empty batch"):
        bg.EquivariantConv2d(3, 2, 3, set_size=2)(torch.randn(0, 3, 5, 5))
    with pytest.raises(RuntimeError, match="x: expected a 4-d batch"):
        bg.EquivariantConv2d(3, 2, 3)(torch.randn(3, 5, 5))
    with pytest.raises(RuntimeError, match="num_sets: the batch of 5 samples"):
        bg.set_mean(torch.randn(5, 2), 2)
    with pytest.raises(RuntimeError, match="x: expected a batch"):
        bg.set_mean(torch.tensor(1.0), 1)
    with pytest.raises(RuntimeError, match="batch: expected a positive batch size"):
        torch.ops.batchgan._set_mean_backward(torch.randn(2, 3), 0)


def test_backward_op_bad_input():
    x, w = torch.randn(4, 3), torch.randn(2, 3)
    out = bg.equivariant_linear(x, w, w, None, 2)
    with pytest.raises(RuntimeError, match="grad: expected the shape of out"):
        torch.ops.batchgan._equivariant_linear_backward(
            torch.randn(4, 3), out, x, bg.set_mean(x, 2), w, w, False, 2, "identity", 0.0, [True] * 4
        )
    with pytest.raises(RuntimeError, match=r"x_mean: expected the set means of x, shape \[2, 3\]"):
        torch.ops.batchgan._equivariant_linear_backward(
            torch.randn_like(out), out, x, bg.set_mean(x, 1), w, w, False, 2, "identity", 0.0, [True] * 4
        )


# --------------------------------------------------------------------------------------------
# the CUDA kernels, executed by the CPU emulator, against the CPU kernels


EMULATED_CONV_CASES = [
    (3, 3, 2, 3, 5, 7, 3, 1, 1, 1),  # size-1 sets, 3*3*35 = 315 outputs: not a multiple of 256
    (4, 1, 3, 2, 9, 9, 4, 2, 1, 1),
    (6, 2, 2, 5, 11, 3, (3, 1), (2, 1), (1, 0), (1, 1)),
    GROUPED_CONV_CASES[0],
    GROUPED_CONV_CASES[2],
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("case", EMULATED_CONV_CASES)
@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_emulated_conv2d_matches_cpu(emulated, dtype, case, activation, slope, channels_last):
    (x, wl, wg, b), kw = _conv_inputs(case, dtype, True)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    p = _pairs(**kw)
    args = (x, wl, wg, b, *p.values(), activation, slope)
    out = emulated.equivariant_conv2d(*args)
    expected = torch.ops.batchgan.equivariant_conv2d(*args)
    torch.testing.assert_close(out, expected, **TOLERANCES[dtype])
    # The forward autograd runs also returns the set means it saves for the backward.
    out_f, mean_f = emulated._equivariant_conv2d_forward(*args)
    torch.testing.assert_close(out_f, expected, **TOLERANCES[dtype])
    torch.testing.assert_close(mean_f, torch.ops.batchgan.set_mean(x, p["num_sets"]), **TOLERANCES[dtype])
    grad = torch.randn(out.shape).to(dtype)
    bargs = (
        grad,
        expected,
        x,
        torch.ops.batchgan.set_mean(x, p["num_sets"]),
        wl,
        wg,
        True,
        *p.values(),
        activation,
        slope,
        [True] * 4,
    )
    for a, e in zip(
        emulated._equivariant_conv2d_backward(*bargs), torch.ops.batchgan._equivariant_conv2d_backward(*bargs)
    ):
        torch.testing.assert_close(a, e, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("n, g, fin, fout", [(5, 5, 3, 7), (6, 2, 17, 300), (1, 1, 2, 1)])
@pytest.mark.parametrize("activation, slope", ACTIVATIONS)
def test_emulated_linear_matches_cpu(emulated, dtype, n, g, fin, fout, activation, slope):
    x = torch.randn(n, fin).to(dtype)
    wl, wg = torch.randn(fout, fin).to(dtype), torch.randn(fout, fin).to(dtype)
    b = torch.randn(fout).to(dtype)
    out = emulated.equivariant_linear(x, wl, wg, b, g, activation, slope)
    expected = torch.ops.batchgan.equivariant_linear(x, wl, wg, b, g, activation, slope)
    torch.testing.assert_close(out, expected, **TOLERANCES[dtype])
    grad = torch.randn(out.shape).to(dtype)
    expected_mean = torch.ops.batchgan.set_mean(x, g)
    for a, e in zip(
        emulated._equivariant_linear_forward(x, wl, wg, b, g, activation, slope), (expected, expected_mean)
    ):
        torch.testing.assert_close(a, e, **TOLERANCES[dtype])
    bargs = (grad, expected, x, expected_mean, wl, wg, True, g, activation, slope, [True] * 4)
    for a, e in zip(
        emulated._equivariant_linear_backward(*bargs), torch.ops.batchgan._equivariant_linear_backward(*bargs)
    ):
        torch.testing.assert_close(a, e, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape, num_sets", [((6, 3, 5, 5), 3), ((7,), 7), ((4, 257), 2), ((1, 1), 1)])
def test_emulated_set_mean_matches_cpu(emulated, dtype, shape, num_sets):
    x = torch.randn(shape).to(dtype)
    out = emulated.set_mean(x, num_sets)
    torch.testing.assert_close(out, torch.ops.batchgan.set_mean(x, num_sets), **TOLERANCES[dtype])
    grad = torch.randn(out.shape).to(dtype)
    torch.testing.assert_close(
        emulated._set_mean_backward(grad, shape[0]),
        torch.ops.batchgan._set_mean_backward(grad, shape[0]),
        **TOLERANCES[dtype],
    )


def test_emulated_kernels_reject_bad_input_like_cpu(emulated):
    with pytest.raises(RuntimeError, match="num_sets: the batch of 4 samples does not split into 3"):
        emulated.equivariant_conv2d(
            torch.randn(4, 3, 5, 5),
            torch.randn(2, 3, 3, 3),
            torch.randn(2, 3, 3, 3),
            None,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
            3,
            "identity",
            0.0,
        )
    with pytest.raises(RuntimeError, match="weight_gamma: expected the shape of weight"):
        emulated.equivariant_linear(torch.randn(4, 3), torch.randn(2, 3), torch.randn(3, 3), None, 1, "relu", 0.0)


# --------------------------------------------------------------------------------------------
# SetBatchNorm: what make_equivariant puts in place of nn.BatchNorm


@pytest.mark.parametrize("dims", [1, 2])
def test_set_batch_norm_is_batch_norm_of_each_set_alone(dims):
    torch.manual_seed(11)
    bn = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(5, momentum=0.3).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
    reference = copy.deepcopy(bn)  # an nn.BatchNorm run on one set at a time
    set_bn = bg.SetBatchNorm(bn, set_size=3)
    shape = (12, 5) if dims == 1 else (12, 5, 4, 3)
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    out = set_bn(x)
    expected = torch.cat(
        [
            torch.nn.functional.batch_norm(x[i : i + 3], None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
            for i in range(0, 12, 3)
        ]
    )
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    # Sets are independent: changing one set leaves the others' outputs as they were.
    x2 = x.clone()
    x2[3:6] = torch.randn_like(x2[3:6]) * 10
    out2 = set_bn(x2)
    torch.testing.assert_close(out2[:3], out[:3], rtol=0, atol=0)
    torch.testing.assert_close(out2[6:], out[6:], rtol=0, atol=0)
    # Equivariant within a set.
    perm = torch.tensor([2, 0, 1, 3, 4, 5, 8, 6, 7, 11, 10, 9])
    torch.testing.assert_close(set_bn(x[perm]), out[perm], rtol=1e-10, atol=1e-12)
    # Parameters and buffers are the original layer's (one state_dict layout, shared tensors).
    assert set_bn.weight is bn.weight and set_bn.running_mean is bn.running_mean
    assert set(set_bn.state_dict()) == set(reference.state_dict())


def test_set_batch_norm_running_statistics_and_eval_mode():
    torch.manual_seed(12)
    set_bn = bg.SetBatchNorm(nn.BatchNorm2d(4, momentum=0.25).double(), set_size=2)
    x = torch.randn(6, 4, 3, 3, dtype=torch.float64) * 2 + 0.5
    set_bn(x)
    values = x.view(3, 2, 4, 9).transpose(1, 2).reshape(3, 4, 18)
    torch.testing.assert_close(set_bn.running_mean, 0.25 * values.mean(-1).mean(0))
    torch.testing.assert_close(set_bn.running_var, 0.75 + 0.25 * values.var(-1).mean(0))
    assert int(set_bn.num_batches_tracked) == 1
    # Eval mode normalises with the running statistics, sample by sample (any batch size).
    set_bn.eval()
    one = x[:1]
    expected = (one - set_bn.running_mean.view(1, 4, 1, 1)) / torch.sqrt(set_bn.running_var.view(1, 4, 1, 1) + 1e-5)
    torch.testing.assert_close(set_bn(one), expected)
    # momentum=None: the cumulative average, as nn.BatchNorm.
    cumulative = bg.SetBatchNorm(nn.BatchNorm1d(3, momentum=None).double(), set_size=2)
    a, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    cumulative(a)
    cumulative(b)
    mean = lambda t: t.view(2, 2, 3).mean(1).mean(0)  # noqa: E731
    torch.testing.assert_close(cumulative.running_mean, (mean(a) + mean(b)) / 2)


def test_set_batch_norm_gradcheck_and_bad_input():
    torch.manual_seed(13)
    set_bn = bg.SetBatchNorm(nn.BatchNorm2d(2).double(), set_size=3)
    x = torch.randn(6, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: set_bn(x), (x, set_bn.weight, set_bn.bias))
    with pytest.raises(ValueError, match=r"set_size: the batch of 5 samples does not split into sets of 3"):
        set_bn(torch.randn(5, 2, 2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x: expected a batch of shape \(N, 2, \.\.\.\)"):
        set_bn(torch.randn(6, 3, 2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="set_size"):
        bg.SetBatchNorm(nn.BatchNorm1d(2), 0)


def test_make_equivariant_gives_batch_norm_per_set_statistics():
    """A DCGAN discriminator with BatchNorm: after the conversion no set's score depends on another set."""
    torch.manual_seed(14)
    disc = nn.Sequential(
        nn.Conv2d(1, 4, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(4, 8, 4, 2, 1),
        nn.BatchNorm2d(8),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 1),
    )
    eq = bg.make_equivariant(disc, 4, reduce=None)
    assert isinstance(eq[0][3], bg.SetBatchNorm) and eq[0][3].set_size == 4
    assert isinstance(disc[3], nn.BatchNorm2d)  # the original is untouched
    x = torch.randn(12, 1, 16, 16)
    out = eq(x)
    x2 = x.clone()
    x2[4:8] += 5.0
    out2 = eq(x2)
    torch.testing.assert_close(out2[:4], out[:4])
    torch.testing.assert_close(out2[8:], out[8:])


@pytest.mark.parametrize(
    "layer, message",
    [
        (
            nn.ConvTranspose2d(4, 4, 3, padding=1),
            r"discriminator\.1: make_equivariant converts nn\.Conv2d and nn\.Linear",
        ),
        (nn.Conv1d(4, 4, 1), r"discriminator\.1: .* a Conv1d would stay without the set term"),
        (bg.MinibatchStdDev(4), r"discriminator\.1: MinibatchStdDev mixes samples across the batch"),
        (bg.MinibatchDiscrimination(4, 2, 2), r"discriminator\.1: MinibatchDiscrimination mixes samples"),
        (nn.SyncBatchNorm(4), r"discriminator\.1: SyncBatchNorm mixes samples"),
        (bg.EquivariantLinear(4, 4, set_size=2), r"discriminator\.1: is already converted \(EquivariantLinear\)"),
    ],
)
def test_make_equivariant_names_the_layer_it_cannot_convert(layer, message):
    disc = nn.Sequential(nn.Linear(4, 4), layer, nn.Linear(4, 1))
    with pytest.raises(ValueError, match=message):
        bg.make_equivariant(disc, 2)


def test_make_equivariant_rejects_subclasses_of_its_layers():
    class MyLinear(nn.Linear):
        pass

    with pytest.raises(ValueError, match=r"discriminator\.inner\.0: MyLinear subclasses nn\.Linear"):
        bg.make_equivariant(nn.Sequential(OrderedDict(inner=nn.Sequential(MyLinear(3, 1)))), 2)
