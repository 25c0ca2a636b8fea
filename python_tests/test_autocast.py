"""torch.autocast and channels-last memory through every op and every method's discriminator on the
CPU: the products run in the autocast dtype (as nn.Conv2d / nn.Linear), the loss in float32 (as
binary_cross_entropy_with_logits), mix promotes real and fake to one dtype, the one-tensor ops run
in their input's dtype."""

import pytest
import torch
from torch import nn

import batchgan_ext as bg
from batchgan_ext.train import METHODS, GANLoss
from batchgan_ext.train.image_networks import make_image_discriminator

BF16 = torch.bfloat16


def _autocast():
    return torch.autocast("cpu", dtype=BF16)


def test_equivariant_conv2d_runs_in_the_autocast_dtype():
    x, w, wg, b = torch.randn(6, 3, 7, 5), torch.randn(4, 3, 3, 3), torch.randn(4, 3, 3, 3), torch.randn(4)
    args = (1, 1, 1, 1, 3, "leaky_relu", 0.2)
    with _autocast():
        out = bg.equivariant_conv2d(x, w, wg, b, *args)
    assert out.dtype == BF16
    expected = bg.equivariant_conv2d(x.to(BF16), w.to(BF16), wg.to(BF16), b.to(BF16), *args)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_equivariant_linear_runs_in_the_autocast_dtype_and_float32_parameters_get_float32_gradients():
    layer = nn.utils.parametrizations.spectral_norm(bg.EquivariantLinear(5, 3, set_size=2, activation="relu"))
    x = torch.randn(6, 5, dtype=torch.float32)
    with _autocast():
        out = layer(x)
    assert out.dtype == BF16
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in layer.parameters())
    w, wg = layer.weight, layer.weight_gamma
    expected = bg.equivariant_linear(x.to(BF16), w.to(BF16), wg.to(BF16), layer.bias.to(BF16), 3, "relu", 0.01)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_bernoulli_kl_loss_runs_in_float32_under_autocast():
    logits, target = torch.randn(8, dtype=BF16), torch.rand(2)
    with _autocast():
        loss = bg.bernoulli_kl_loss(logits, target, "bgan", num_sets=2)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, bg.bernoulli_kl_loss(logits.float(), target, "bgan", num_sets=2))


def test_mix_promotes_real_and_fake_to_one_dtype_under_autocast():
    real, fake = torch.randn(8, 3), torch.randn(8, 3, dtype=BF16, requires_grad=True)
    beta, _ = bg.sample_mixing(8, num_sets=2, gamma=0.5, generator=torch.Generator().manual_seed(0))
    with _autocast():
        mixed, complement = bg.mix(real, fake, beta, complement=True)
    assert mixed.dtype == complement.dtype == torch.float32
    expected = bg.mix(real, fake.float(), beta, complement=True)
    torch.testing.assert_close(mixed, expected[0], rtol=0, atol=0)
    torch.testing.assert_close(complement, expected[1], rtol=0, atol=0)
    (mixed.sum() + complement.sum()).backward()
    assert fake.grad.dtype == BF16
    with pytest.raises(RuntimeError, match="fake: expected the dtype of real"):  # outside autocast: checked
        bg.mix(real, fake, beta)


def test_single_tensor_ops_keep_their_input_dtype_under_autocast():
    x = torch.randn(8, 4, 3, 3, dtype=BF16)
    with _autocast():
        assert bg.set_mean(x, num_sets=2).dtype == BF16
        assert bg.minibatch_stddev(x, group_size=4).dtype == BF16
        assert bg.pairwise_l1_features(torch.randn(8, 3, 2, dtype=BF16), num_sets=2).dtype == BF16
        assert bg.set_mean(x.float(), num_sets=2).dtype == torch.float32


@pytest.mark.parametrize("method", METHODS)
def test_every_methods_discriminator_step_under_bf16_autocast_and_channels_last(method):
    torch.manual_seed(0)
    gan = GANLoss(method, set_size=4, minibatch_set_size=8)
    D = gan.convert_discriminator(make_image_discriminator(3, 4))
    real, fake = torch.rand(16, 3, 32, 32) * 2 - 1, torch.rand(16, 3, 32, 32) * 2 - 1
    gan.initialize(D, real)
    D.eval()  # spectral norm's power iteration would otherwise move sigma between the calls compared

    def loss(D, real, fake):
        return gan.discriminator_loss(D, real, fake, generator=torch.Generator().manual_seed(3))

    reference = loss(D, real, fake)
    with _autocast():
        low = loss(D, real, fake)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    torch.testing.assert_close(low, reference, rtol=5e-2, atol=5e-2)
    low.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.parameters() if p.requires_grad)
    channels_last = D.to(memory_format=torch.channels_last)
    as_cl = loss(
        channels_last,
        real.contiguous(memory_format=torch.channels_last),
        fake.contiguous(memory_format=torch.channels_last),
    )
    torch.testing.assert_close(as_cl, reference, rtol=1e-4, atol=1e-5)
