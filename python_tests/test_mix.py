"""mix and the MixedBatch module (BGAN paper, eq. 2, section 3.1)."""

import pytest
import torch

import batchgan_ext as bg
from batchgan_ext._reference.mixing import mix_reference

from conftest import FLOAT_DTYPES

SAMPLE_SHAPES = [(), (1,), (7,), (3, 5), (3, 4, 4), (2, 3, 5, 2)]


def _random_beta(batch):
    return torch.rand(batch) < 0.5


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


@pytest.mark.parametrize(
    "real, fake, beta, message",
    [
        (torch.randn(4, 3), torch.randn(4, 2), torch.ones(4, dtype=torch.bool), "fake: expected the shape"),
        (torch.randn(4, 3), torch.randn(4, 3).double(), torch.ones(4, dtype=torch.bool), "fake: expected the dtype"),
        (
            torch.randn(4, 3),
            torch.randn(4, 3),
            torch.ones(3, dtype=torch.bool),
            "beta: expected a 1-d mask of length 4",
        ),
        (torch.randn(4, 3), torch.randn(4, 3), torch.ones(4, 1, dtype=torch.bool), "beta: expected a 1-d mask"),
        (
            torch.randn(4, 3),
            torch.randn(4, 3),
            torch.tensor([0, 1, 2, 1]),
            r"beta: expected a boolean mask or values in \{0, 1\}",
        ),
        (torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0.0, 0.5, 1.0, 1.0]), "beta: expected a boolean mask"),
        (
            torch.randint(0, 3, (4, 3)),
            torch.randint(0, 3, (4, 3)),
            torch.ones(4, dtype=torch.bool),
            "real: expected a float32",
        ),
        (torch.tensor(1.0), torch.tensor(2.0), torch.ones(1, dtype=torch.bool), "real: expected a batch"),
        (
            torch.randn(4, 3),
            torch.randn(4, 3),
            torch.ones(4, dtype=torch.bool, device="meta"),
            "beta: expected a tensor on the same device",
        ),
    ],
)
def test_mix_bad_input(real, fake, beta, message):
    with pytest.raises(RuntimeError, match=message):
        bg.mix(real, fake, beta)


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


def test_emulated_mix_rejects_bad_input_like_cpu(emulated):
    with pytest.raises(RuntimeError, match="fake: expected the shape"):
        emulated.mix(torch.randn(3, 2), torch.randn(3, 3), torch.ones(3, dtype=torch.bool), False)
