"""Mixed batches: sample_mixing, mix, bernoulli_kl_loss, batch_generator_loss and their modules
(BGAN paper, eq. 2-5, 13, 14)."""

import math

import pytest
import torch
import torch.nn.functional as F

import batchgan_ext as bg
from batchgan_ext._reference.mixing import bernoulli_kl_loss_reference, mix_reference
from conftest import FLOAT_DTYPES, TOLERANCES

SAMPLE_SHAPES = [(), (1,), (7,), (3, 5), (3, 4, 4), (2, 3, 5, 2)]


def _random_beta(batch):
    return torch.rand(batch) < 0.5


# --------------------------------------------------------------------------------------------
# sample_mixing


@pytest.mark.parametrize("gamma", [0.0, 0.1, 0.3, 0.5])
def test_sample_mixing_ratio_support_and_mean(gamma):
    # With one huge set per draw, #beta/B concentrates on p, so the targets trace the support
    # [0, gamma] U [1 - gamma, 1] of p.
    g = torch.Generator().manual_seed(1)
    draws = 400
    beta, target = bg.sample_mixing(draws * 4000, num_sets=draws, gamma=gamma, generator=g)
    assert beta.dtype == torch.bool and beta.shape == (draws * 4000,)
    assert target.shape == (draws,) and target.dtype == torch.float32
    torch.testing.assert_close(target, beta.view(draws, 4000).float().mean(1))
    slack = 0.03  # binomial noise of a 4000-sample set
    in_support = (target <= gamma + slack) | (target >= 1 - gamma - slack)
    assert bool(in_support.all())
    # Symmetric prior: mean 1/2, both intervals equally likely.
    assert abs(target.mean().item() - 0.5) < 0.06
    low = (target < 0.5).float().mean().item()
    assert 0.4 < low < 0.6
    if gamma == 0.5:
        # p uniform on [0, 1]: the targets' variance is close to 1/12.
        assert abs(target.var().item() - 1 / 12) < 0.015
    if gamma == 0.0:
        assert set(target.unique().tolist()) <= {0.0, 1.0}


def test_sample_mixing_groups_are_independent():
    g = torch.Generator().manual_seed(2)
    _, target = bg.sample_mixing(2 * 500 * 64, num_sets=2 * 500, gamma=0.5, generator=g)
    pairs = target.view(500, 2)
    corr = torch.corrcoef(pairs.T)[0, 1].item()
    assert abs(corr) < 0.15
    # Each group's ratio comes from its own beta slice.
    beta, target = bg.sample_mixing(12, num_sets=3, gamma=0.5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(target, beta.view(3, 4).float().mean(1))


def test_sample_mixing_is_deterministic_under_a_generator():
    a = bg.sample_mixing(64, 4, 0.3, generator=torch.Generator().manual_seed(7))
    b = bg.sample_mixing(64, 4, 0.3, generator=torch.Generator().manual_seed(7))
    c = bg.sample_mixing(64, 4, 0.3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=10, num_sets=3), "num_sets"),
        (dict(batch_size=10, num_sets=0), "num_sets"),
        (dict(batch_size=10, gamma=0.7), "gamma"),
        (dict(batch_size=10, gamma=-0.1), "gamma"),
    ],
)
def test_sample_mixing_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bg.sample_mixing(**kwargs)


# --------------------------------------------------------------------------------------------
# mix: values


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES)
@pytest.mark.parametrize("batch", [1, 2, 9])
@pytest.mark.parametrize("complement", [False, True])
def test_mix_matches_reference(dtype, sample_shape, batch, complement):
    real = torch.randn(batch, *sample_shape).to(dtype)
    fake = torch.randn(batch, *sample_shape).to(dtype)
    beta = _random_beta(batch)
    out = bg.mix(real, fake, beta, complement)
    expected = mix_reference(real, fake, beta, complement)
    if complement:
        assert torch.equal(out[0], expected[0]) and torch.equal(out[1], expected[1])
    else:
        assert torch.equal(out, expected)


def test_mix_is_a_gather_not_arithmetic():
    # inf/NaN in unused samples must not leak (real * 0 = NaN in the formula).
    real = torch.tensor([[1.0, 2.0], [float("inf"), float("nan")]])
    fake = torch.tensor([[float("nan"), 3.0], [4.0, 5.0]])
    beta = torch.tensor([True, False])
    mixed, comp = bg.mix(real, fake, beta, complement=True)
    assert torch.equal(mixed, torch.tensor([[1.0, 2.0], [4.0, 5.0]]))
    assert torch.equal(comp[0], fake[0]) is False  # NaN != NaN; compare bit patterns instead
    assert torch.equal(comp.view(torch.int32), torch.stack([fake[0], real[1]]).view(torch.int32))


@pytest.mark.parametrize("beta_dtype", [torch.bool, torch.uint8, torch.int64, torch.float32])
def test_mix_accepts_zero_one_masks(beta_dtype):
    real, fake = torch.randn(6, 3), torch.randn(6, 3)
    beta = torch.tensor([1, 0, 0, 1, 1, 0]).to(beta_dtype)
    out = bg.mix(real, fake, beta)
    assert torch.equal(out, mix_reference(real, fake, beta.bool()))


def test_mix_channels_last_and_non_contiguous():
    real = torch.randn(4, 3, 5, 6).to(memory_format=torch.channels_last)
    fake = torch.randn(4, 3, 5, 6).to(memory_format=torch.channels_last)
    beta = torch.tensor([True, False, True, False])
    mixed, comp = bg.mix(real, fake, beta, complement=True)
    assert mixed.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(mixed, mix_reference(real, fake, beta))
    assert torch.equal(comp, mix_reference(real, fake, ~beta))
    # Non-contiguous (transposed, strided) inputs.
    real_t = torch.randn(5, 4, 4).transpose(1, 2)
    fake_t = torch.randn(5, 8, 4)[:, ::2]
    beta5 = _random_beta(5)
    assert torch.equal(bg.mix(real_t, fake_t, beta5), mix_reference(real_t, fake_t, beta5))
    # Mixed layouts: the output follows real's.
    fake_cf = torch.randn(4, 3, 5, 6)
    assert torch.equal(bg.mix(real, fake_cf, beta), mix_reference(real, fake_cf, beta))


def test_mix_empty_batch_and_empty_samples():
    out = bg.mix(torch.randn(0, 3), torch.randn(0, 3), torch.zeros(0, dtype=torch.bool), complement=True)
    assert out[0].shape == (0, 3) and out[1].shape == (0, 3)
    real = torch.randn(3, 0, requires_grad=True)
    mixed = bg.mix(real, torch.randn(3, 0), _random_beta(3))
    assert mixed.shape == (3, 0)
    mixed.sum().backward()
    assert real.grad.shape == (3, 0)


# --------------------------------------------------------------------------------------------
# mix: gradients and registration


@pytest.mark.parametrize("complement", [False, True])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_mix_backward_routes_gradients(complement, dtype):
    real = torch.randn(7, 3, 2).to(dtype).requires_grad_()
    fake = torch.randn(7, 3, 2).to(dtype).requires_grad_()
    beta = _random_beta(7)
    out = bg.mix(real, fake, beta, complement)
    out = torch.cat(out) if complement else out
    weight = torch.randn(out.shape).to(dtype)
    (out * weight).sum().backward()
    real_ref = real.detach().double().requires_grad_()
    fake_ref = fake.detach().double().requires_grad_()
    expected = mix_reference(real_ref, fake_ref, beta, complement)
    expected = torch.cat(expected) if complement else expected
    (expected * weight.double()).sum().backward()
    assert torch.equal(real.grad.double(), real_ref.grad)
    assert torch.equal(fake.grad.double(), fake_ref.grad)


@pytest.mark.parametrize("complement", [False, True])
def test_mix_gradcheck(complement):
    real = torch.randn(5, 3, 2, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(5, 3, 2, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor([True, False, False, True, False])
    fn = lambda r, f: bg.mix(r, f, beta, complement)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (real, fake))
    assert torch.autograd.gradgradcheck(fn, (real, fake))


@pytest.mark.parametrize("complement", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_mix_opcheck(complement, layout):
    real = torch.randn(4, 3, 5, 5, requires_grad=True)
    fake = torch.randn(4, 3, 5, 5, requires_grad=True)
    if layout == "channels_last":
        real = real.detach().to(memory_format=torch.channels_last).requires_grad_()
        fake = fake.detach().to(memory_format=torch.channels_last).requires_grad_()
    beta = torch.tensor([True, False, True, True])
    torch.library.opcheck(torch.ops.batchgan.mix.default, (real, fake, beta, complement))
    grad = torch.randn(4 * (2 if complement else 1), 3, 5, 5, requires_grad=True)
    torch.library.opcheck(torch.ops.batchgan._mix_backward.default, (grad, beta, complement))


# --------------------------------------------------------------------------------------------
# bernoulli_kl_loss: values


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


# --------------------------------------------------------------------------------------------
# bernoulli_kl_loss: gradients and registration


@pytest.mark.parametrize("mode", ["bgan", "mbgan"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bernoulli_kl_gradcheck(mode, reduction):
    logits = torch.randn(12, 1, dtype=torch.float64, requires_grad=True)
    target = (0.1 + 0.8 * torch.rand(3, dtype=torch.float64)).requires_grad_()
    fn = lambda l, t: bg.bernoulli_kl_loss(l, t, mode, 3, reduction)  # noqa: E731
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


# --------------------------------------------------------------------------------------------
# torch.compile and modules


def _discriminator_step(real, fake, beta, target, weight):
    mixed, comp = bg.mix(real, fake, beta, complement=True)
    batch = torch.cat([mixed, comp])
    logits = batch.flatten(1) @ weight
    targets = torch.cat([target, 1 - target])
    return bg.bernoulli_kl_loss(logits, targets, "mbgan", num_sets=2 * target.shape[0])


def test_torch_compile_fullgraph():
    real, fake = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4, requires_grad=True)
    beta, target = bg.sample_mixing(8, 2, generator=torch.Generator().manual_seed(0))
    weight = torch.randn(48, requires_grad=True)
    eager = _discriminator_step(real, fake, beta, target, weight)
    eager_grads = torch.autograd.grad(eager, (fake, weight))
    compiled = torch.compile(_discriminator_step, fullgraph=True, backend="aot_eager")
    out = compiled(real, fake, beta, target, weight)
    grads = torch.autograd.grad(out, (fake, weight))
    torch.testing.assert_close(out, eager)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b)


def test_mixed_batch_module_feeds_the_loss():
    mixer = bg.MixedBatch(gamma=0.5, num_sets=2, complement=True)
    loss_fn = bg.BernoulliKLLoss(mode="mbgan", num_sets=mixer.output_num_sets)
    real, fake = torch.randn(8, 2), torch.randn(8, 2, requires_grad=True)
    g = torch.Generator().manual_seed(5)
    batch, target, beta = mixer(real, fake, generator=g)
    assert batch.shape == (16, 2) and target.shape == (4,)
    torch.testing.assert_close(target[2:], 1 - target[:2])
    # Every real and every fake sample is used exactly once across the two halves.
    assert torch.equal(batch[:8][beta], real[beta]) and torch.equal(batch[8:][~beta], real[~beta])
    loss = loss_fn(batch.sum(1), target)
    loss.backward()
    assert fake.grad is not None and bool((fake.grad != 0).all())
    assert "gamma=0.5" in repr(mixer)


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "real, fake, beta, message",
    [
        (torch.randn(4, 3), torch.randn(4, 2), torch.ones(4, dtype=torch.bool), "fake: expected the shape"),
        (torch.randn(4, 3), torch.randn(4, 3).double(), torch.ones(4, dtype=torch.bool), "fake: expected the dtype"),
        (torch.randn(4, 3), torch.randn(4, 3), torch.ones(3, dtype=torch.bool), "beta: expected a 1-d mask of length 4"),
        (torch.randn(4, 3), torch.randn(4, 3), torch.ones(4, 1, dtype=torch.bool), "beta: expected a 1-d mask"),
        (torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), r"beta: expected a boolean mask or values in \{0, 1\}"),
        (torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0.0, 0.5, 1.0, 1.0]), "beta: expected a boolean mask"),
        (torch.randint(0, 3, (4, 3)), torch.randint(0, 3, (4, 3)), torch.ones(4, dtype=torch.bool), "real: expected a float32"),
        (torch.tensor(1.0), torch.tensor(2.0), torch.ones(1, dtype=torch.bool), "real: expected a batch"),
        (torch.randn(4, 3), torch.randn(4, 3), torch.ones(4, dtype=torch.bool, device="meta"), "beta: expected a tensor on the same device"),
    ],
)
def test_mix_bad_input(real, fake, beta, message):
    with pytest.raises(RuntimeError, match=message):
        bg.mix(real, fake, beta)


@pytest.mark.parametrize(
    "logits, target, kwargs, message",
    [
        (torch.randn(6), torch.rand(2), dict(num_sets=4), "num_sets: the batch of 6 samples does not split into 4"),
        (torch.randn(6), torch.rand(2), dict(num_sets=0), "num_sets: expected a positive number"),
        (torch.randn(6), torch.rand(3), dict(num_sets=2), r"target: expected one ratio per set, shape \(2,\)"),
        (torch.randn(6), torch.tensor([0.5, 1.5]), dict(num_sets=2), r"target: expected ratios of real samples in \[0, 1\]"),
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


# --------------------------------------------------------------------------------------------
# the CUDA kernels, executed by the CPU emulator, against the CPU kernels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("batch, sample_shape", [(1, (1,)), (3, (7, 11)), (5, (3, 17)), (2, (300,)), (0, (4,))])
@pytest.mark.parametrize("complement", [False, True])
def test_emulated_mix_matches_cpu(emulated, dtype, batch, sample_shape, complement):
    # Totals like 2*3*77 = 462 or 2*5*51 = 510 are not multiples of the 256-thread block.
    real = torch.randn(batch, *sample_shape).to(dtype)
    fake = torch.randn(batch, *sample_shape).to(dtype)
    beta = _random_beta(batch)
    out = emulated.mix(real, fake, beta, complement)
    assert torch.equal(out, torch.ops.batchgan.mix(real, fake, beta, complement))
    grad = torch.randn(out.shape).to(dtype)
    got = emulated._mix_backward(grad, beta, complement)
    expected = torch.ops.batchgan._mix_backward(grad, beta, complement)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_emulated_mix_grid_stride_loop(emulated):
    # More elements than kMaxElementwiseBlocks * 256 threads: the grid-stride loop must
    # cover the tail.
    real, fake = torch.randn(2, 530_000), torch.randn(2, 530_000)
    beta = torch.tensor([False, True])
    out = emulated.mix(real, fake, beta, True)
    assert torch.equal(out, torch.cat([fake[:1], real[1:], real[:1], fake[1:]]))


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


def test_emulated_kernels_reject_bad_input_like_cpu(emulated):
    with pytest.raises(RuntimeError, match="num_sets: the batch of 6 samples"):
        emulated.bernoulli_kl_loss(torch.randn(6), torch.rand(4), "bgan", 4, "mean")
    with pytest.raises(RuntimeError, match="fake: expected the shape"):
        emulated.mix(torch.randn(3, 2), torch.randn(3, 3), torch.ones(3, dtype=torch.bool), False)
