"""minibatch_stddev and MinibatchStdDev (Karras et al. 2018; StyleGAN2-ADA)."""

import pytest
import torch

import batchgan_ext as bg
from batchgan_ext._reference.minibatch import minibatch_stddev_reference

from conftest import FLOAT_DTYPES, TOLERANCES

STD_SHAPES = [
    # (x shape, group_size, num_channels)
    ((8, 4, 3, 3), 4, 1),
    ((8, 6, 5, 2), 2, 3),
    ((3, 2, 4, 4), 4, 1),  # N < group size: one group of all 3 samples
    ((1, 3, 2, 2), 4, 1),  # one sample: zero variance, sqrt(1e-8)
    ((12, 5), 3, 5),  # (N, C) features
    ((6, 2, 3, 1, 5), 2, 2),  # 3 spatial dims
]


@pytest.mark.parametrize("shape, group_size, num_channels", STD_SHAPES)
def test_stddev_matches_stylegan_reference(shape, group_size, num_channels):
    x = torch.randn(shape, dtype=torch.float64)
    out = bg.minibatch_stddev(x, group_size, num_channels)
    expected = minibatch_stddev_reference(x, group_size, num_channels)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, **TOLERANCES[torch.float64])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_stddev_dtypes(dtype):
    x = torch.randn(8, 6, 5, 3).to(dtype)
    out = bg.minibatch_stddev(x, 4, 2)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), minibatch_stddev_reference(x.double(), 4, 2), **TOLERANCES[dtype])
    xg = x.detach().requires_grad_()
    w = torch.randn(out.shape, dtype=torch.float64)
    (bg.minibatch_stddev(xg, 4, 2).double() * w).sum().backward()
    xr = x.detach().double().requires_grad_()
    (minibatch_stddev_reference(xr, 4, 2) * w).sum().backward()
    tol = {
        torch.float64: TOLERANCES[torch.float64],
        torch.float32: dict(rtol=1e-5, atol=1e-5),
        torch.float16: dict(rtol=2e-3, atol=2e-3),
        torch.bfloat16: dict(rtol=2e-2, atol=2e-2),
    }[dtype]
    torch.testing.assert_close(xg.grad.double(), xr.grad, **tol)


@pytest.mark.parametrize("shape, group_size, num_channels", STD_SHAPES[:5])
def test_stddev_gradcheck(shape, group_size, num_channels):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: bg.minibatch_stddev(t, group_size, num_channels), (x,))


@pytest.mark.parametrize("shape, group_size, num_channels", STD_SHAPES[:5])
def test_stddev_gradgradcheck(shape, group_size, num_channels):
    # create_graph=True composes the backward from differentiable ops (the autograd kernel).
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: bg.minibatch_stddev(t, group_size, num_channels), (x,))


def test_stddev_r1_penalty_matches_reference():
    # StyleGAN2's R1 penalty ||d D / d x||^2 runs through this layer; its gradient w.r.t. x and
    # a weight after it, against the StyleGAN2-ADA formula.
    x = torch.randn(8, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 3, 3, dtype=torch.float64, requires_grad=True)

    def penalty_grads(layer):
        score = (layer(x, 4, 2) * w).sum()
        (gx,) = torch.autograd.grad(score, x, create_graph=True)
        return torch.autograd.grad(gx.square().sum(), (x, w))

    for a, e in zip(penalty_grads(bg.minibatch_stddev), penalty_grads(minibatch_stddev_reference)):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-9)
    # The ordinary backward still gives a plain (graph-free) gradient.
    (grad,) = torch.autograd.grad(bg.minibatch_stddev(x, 4, 2).square().sum(), x)
    assert grad.shape == x.shape and not grad.requires_grad


def test_stddev_groups_are_strided():
    # Group r holds samples r, r + N/G, ...: make samples 0 and 2 identical, 1 and 3 different.
    x = torch.zeros(4, 1, 1, 1, dtype=torch.float64)
    x[1], x[3] = 1.0, 3.0
    out = bg.minibatch_stddev(x, group_size=2)
    torch.testing.assert_close(
        out[:, 1].flatten(), torch.tensor([1e-4, 1.0, 1e-4, 1.0], dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_stddev_opcheck_and_compile():
    x = torch.randn(8, 4, 3, 3, requires_grad=True)
    torch.library.opcheck(torch.ops.batchgan.minibatch_stddev.default, (x, 4, 2))
    torch.library.opcheck(
        torch.ops.batchgan._minibatch_stddev_backward.default, (torch.randn(8, 6, 3, 3), x.detach(), 4, 2)
    )
    layer = bg.MinibatchStdDev(group_size=4)
    conv = torch.nn.Conv2d(5, 1, 3)
    fn = lambda t: conv(layer(t)).square().mean()  # noqa: E731
    eager = fn(x)
    eager_grad = torch.autograd.grad(eager, x)[0]
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(torch.autograd.grad(out, x)[0], eager_grad)


@pytest.mark.parametrize(
    "x, kwargs, message",
    [
        (
            torch.randn(6, 4, 2, 2),
            dict(group_size=4),
            "group_size: the batch of 6 samples is not divisible by the group size 4",
        ),
        (torch.randn(6, 4, 2, 2), dict(group_size=0), "group_size: expected a positive"),
        (torch.randn(8, 5, 2, 2), dict(num_channels=2), "num_channels: the 5 channels of x do not split into 2"),
        (torch.randn(8, 4), dict(num_channels=0), "num_channels: expected a positive"),
        (torch.randn(8), dict(), r"x: expected a batch \(N, C, \*spatial\)"),
        (torch.randn(0, 4, 2, 2), dict(), "x: expected a non-empty batch"),
        (torch.randint(0, 4, (8, 4, 2, 2)), dict(), "x: expected a float32"),
    ],
)
def test_stddev_bad_input(x, kwargs, message):
    with pytest.raises(RuntimeError, match=message):
        bg.minibatch_stddev(x, **kwargs)


def test_stddev_module_and_non_contiguous():
    layer = bg.MinibatchStdDev(group_size=2, num_channels=1)
    x = torch.randn(4, 6, 5, 5).to(memory_format=torch.channels_last)
    torch.testing.assert_close(layer(x), minibatch_stddev_reference(x, 2, 1))
    assert "group_size=2" in repr(layer)
    with pytest.raises(ValueError, match="group_size"):
        bg.MinibatchStdDev(group_size=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("shape, group_size, num_channels", STD_SHAPES + [((4, 3, 17, 19), 2, 1)])
def test_emulated_stddev_matches_cpu(emulated, dtype, shape, group_size, num_channels):
    # (4, 3, 17, 19): 3 * 323 elements per block, not a multiple of the 256 threads.
    x = torch.randn(shape).to(dtype)
    out = emulated.minibatch_stddev(x, group_size, num_channels)
    expected = torch.ops.batchgan.minibatch_stddev(x, group_size, num_channels)
    torch.testing.assert_close(out, expected, **TOLERANCES[dtype])
    grad = torch.randn(expected.shape).to(dtype)
    got = emulated._minibatch_stddev_backward(grad, x, group_size, num_channels)
    ref = torch.ops.batchgan._minibatch_stddev_backward(grad, x, group_size, num_channels)
    torch.testing.assert_close(got, ref, **TOLERANCES[dtype])


def test_emulated_stddev_rejects_bad_input_like_cpu(emulated):
    with pytest.raises(RuntimeError, match="group_size: the batch of 6 samples"):
        emulated.minibatch_stddev(torch.randn(6, 2, 2, 2), 4, 1)
