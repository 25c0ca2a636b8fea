"""bernoulli_kl_loss and batch_generator_loss (BGAN paper, eq. 3-5, 13, 14)."""

import math

import pytest
import torch
import torch.nn.functional as F

import batchgan_ext as bg
from batchgan_ext._reference.mixing import bernoulli_kl_loss_reference

from conftest import FLOAT_DTYPES, TOLERANCES


@pytest.mark.parametrize("mode", ["bgan", "mbgan"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("batch, num_sets", [(1, 1), (7, 1), (12, 3), (64, 4), (300, 2)])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_bernoulli_kl_matches_reference(mode, reduction, batch, num_sets, dtype):
    logits = (3 * torch.randn(batch)).to(dtype)
    target = torch.rand(num_sets)
    target[0] = 0.0
    if num_sets > 1:
        target[1] = 1.0
    out = bg.bernoulli_kl_loss(logits, target, mode, num_sets, reduction)
    expected = bernoulli_kl_loss_reference(logits.double(), target.double(), mode, num_sets, reduction)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), expected, **TOLERANCES[dtype])


def test_bernoulli_kl_is_kl_of_bernoullis():
    # Eq. 3 directly: u log(u/v) + (1-u) log((1-u)/(1-v)).
    logits = torch.tensor([-2.0, 0.3, 1.7], dtype=torch.float64)
    u = torch.tensor([0.2, 0.6, 0.9], dtype=torch.float64)
    v = torch.sigmoid(logits)
    expected = u * torch.log(u / v) + (1 - u) * torch.log((1 - u) / (1 - v))
    out = bg.bernoulli_kl_loss(logits, u, "mbgan", num_sets=3, reduction="none")
    torch.testing.assert_close(out, expected)


def test_bernoulli_kl_exact_at_pure_targets_and_finite_at_large_logits():
    logits = torch.tensor([-1e4, -30.0, -1.0, 0.0, 2.5, 40.0, 1e4], dtype=torch.float64)
    n = logits.numel()
    ones, zeros = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    at_one = bg.bernoulli_kl_loss(logits, ones, "mbgan", n, "none")
    at_zero = bg.bernoulli_kl_loss(logits, zeros, "mbgan", n, "none")
    # KL(B(1) || B(sigmoid l)) = -log sigmoid(l) = softplus(-l), and softplus(l) at u = 0.
    softplus = lambda x: torch.logaddexp(torch.zeros_like(x), x)  # noqa: E731  (stable everywhere)
    torch.testing.assert_close(at_one, softplus(-logits), rtol=1e-15, atol=0)
    torch.testing.assert_close(at_zero, softplus(logits), rtol=1e-15, atol=0)
    for dtype in FLOAT_DTYPES:
        for u in (0.0, 0.3, 1.0):
            out = bg.bernoulli_kl_loss(logits.to(dtype), torch.full((n,), u), "mbgan", n, "none")
            assert bool(torch.isfinite(out).all()), (dtype, u, out)
    # A perfect prediction costs exactly zero.
    assert bg.bernoulli_kl_loss(torch.tensor([1e4]), torch.tensor([1.0])).item() == 0.0


def test_bgan_takes_sigmoid_of_the_set_mean_logit():
    logits = torch.tensor([4.0, -2.0, 1.0, 1.0], dtype=torch.float64)
    target = torch.tensor([0.5, 1.0], dtype=torch.float64)
    out = bg.bernoulli_kl_loss(logits, target, "bgan", num_sets=2, reduction="none")
    # group 0: mean logit 1.0 vs u = 0.5; group 1: mean logit 1.0 vs u = 1.
    u = 0.5
    v = 1 / (1 + math.exp(-1.0))
    g0 = u * math.log(u / v) + (1 - u) * math.log((1 - u) / (1 - v))
    torch.testing.assert_close(out, torch.tensor([g0, -math.log(v)], dtype=torch.float64))


@pytest.mark.parametrize("mode", ["bgan", "mbgan"])
def test_generator_loss_is_non_saturating_minus_log_d(mode):
    logits = torch.randn(12, dtype=torch.float64)
    out = bg.batch_generator_loss(logits, mode, num_sets=3)
    per_group = logits.view(3, 4)
    if mode == "bgan":
        expected = -F.logsigmoid(per_group.mean(1)).mean()
    else:
        expected = -F.logsigmoid(per_group).mean()
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("mode", ["bgan", "mbgan"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bernoulli_kl_gradcheck(mode, reduction):
    logits = torch.randn(12, 1, dtype=torch.float64, requires_grad=True)
    target = (0.1 + 0.8 * torch.rand(3, dtype=torch.float64)).requires_grad_()
    fn = lambda logit, t: bg.bernoulli_kl_loss(logit, t, mode, 3, reduction)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (logits, target))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mode", ["bgan", "mbgan"])
def test_bernoulli_kl_backward_matches_reference(dtype, mode):
    logits = (2 * torch.randn(40)).to(dtype).requires_grad_()
    target = torch.tensor([0.0, 0.25, 1.0, 0.5])
    bg.bernoulli_kl_loss(logits, target, mode, 4).backward()
    ref_logits = logits.detach().double().requires_grad_()
    bernoulli_kl_loss_reference(ref_logits, target.double(), mode, 4).backward()
    torch.testing.assert_close(logits.grad.double(), ref_logits.grad, **TOLERANCES[dtype])


@pytest.mark.parametrize("mode", ["bgan", "mbgan"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_bernoulli_kl_opcheck(mode, reduction):
    logits = torch.randn(8, requires_grad=True)
    target = torch.tensor([0.25, 0.75])
    torch.library.opcheck(torch.ops.batchgan.bernoulli_kl_loss.default, (logits, target, mode, 2, reduction))
    n_out = 1 if reduction != "none" else (2 if mode == "bgan" else 8)
    grad = torch.randn(n_out) if reduction == "none" else torch.randn(())
    torch.library.opcheck(
        torch.ops.batchgan._bernoulli_kl_loss_backward.default, (grad, logits.detach(), target, mode, 2, reduction)
    )


@pytest.mark.parametrize(
    "logits, target, kwargs, message",
    [
        (torch.randn(6), torch.rand(2), dict(num_sets=4), "num_sets: the batch of 6 samples does not split into 4"),
        (torch.randn(6), torch.rand(2), dict(num_sets=0), "num_sets: expected a positive number"),
        (torch.randn(6), torch.rand(3), dict(num_sets=2), r"target: expected one ratio per set, shape \(2,\)"),
        (
            torch.randn(6),
            torch.tensor([0.5, 1.5]),
            dict(num_sets=2),
            r"target: expected ratios of real samples in \[0, 1\]",
        ),
        (torch.randn(6), torch.tensor([0.5, -0.1]), dict(num_sets=2), r"target: expected ratios"),
        (torch.randn(6), torch.tensor([0.5, float("nan")]), dict(num_sets=2), r"target: expected ratios"),
        (torch.randn(0), torch.rand(1), dict(), "logits: expected a non-empty batch"),
        (torch.randn(6, 2), torch.rand(1), dict(), r"logits: expected one logit per sample"),
        (torch.randint(0, 2, (6,)), torch.rand(1), dict(), "logits: expected a float32"),
        (torch.randn(6), torch.rand(1), dict(mode="wgan"), "mode: expected 'bgan' or 'mbgan'"),
        (torch.randn(6), torch.rand(1), dict(reduction="max"), "reduction: expected 'none', 'mean' or 'sum'"),
    ],
)
def test_bernoulli_kl_bad_input(logits, target, kwargs, message):
    # ValueError: the wrapper checks num_sets and an empty batch before it allocates a target from num_sets.
    with pytest.raises((RuntimeError, ValueError), match=message):
        bg.bernoulli_kl_loss(logits, target, **kwargs)


def test_nan_logits_propagate():
    out = bg.bernoulli_kl_loss(torch.tensor([0.0, float("nan")]), torch.tensor([0.5]), "bgan")
    assert math.isnan(out.item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("mode", ["bgan", "mbgan"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("batch, num_sets", [(1, 1), (9, 3), (300, 1), (514, 2)])
def test_emulated_bernoulli_kl_matches_cpu(emulated, dtype, mode, reduction, batch, num_sets):
    logits = (3 * torch.randn(batch)).to(dtype)
    target = torch.rand(num_sets)
    out = emulated.bernoulli_kl_loss(logits, target, mode, num_sets, reduction)
    expected = torch.ops.batchgan.bernoulli_kl_loss(logits, target, mode, num_sets, reduction)
    torch.testing.assert_close(out, expected, **TOLERANCES[dtype])
    grad = torch.randn(expected.shape).to(dtype)
    got = emulated._bernoulli_kl_loss_backward(grad, logits, target, mode, num_sets, reduction)
    ref = torch.ops.batchgan._bernoulli_kl_loss_backward(grad, logits, target, mode, num_sets, reduction)
    torch.testing.assert_close(got[0], ref[0], **TOLERANCES[dtype])
    torch.testing.assert_close(got[1], ref[1], **TOLERANCES[torch.float32])


def test_emulated_bernoulli_kl_rejects_bad_input_like_cpu(emulated):
    with pytest.raises(RuntimeError, match="num_sets: the batch of 6 samples"):
        emulated.bernoulli_kl_loss(torch.randn(6), torch.rand(4), "bgan", 4, "mean")
