"""GANLoss: every method's losses for the user's own networks, the conversions of D, and the set
structure declared once and checked (issue: image GANs end to end)."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import batchgan_ext as bg
from batchgan_ext.train import METHODS, GANLoss

SN = nn.utils.parametrizations.spectral_norm


def image_discriminator(spectral=False):
    sn = SN if spectral else (lambda m: m)
    return nn.Sequential(
        sn(nn.Conv2d(3, 8, 4, 2, 1)), nn.LeakyReLU(0.2),
        sn(nn.Conv2d(8, 16, 4, 2, 1)), nn.LeakyReLU(0.2),
        nn.Flatten(), sn(nn.Linear(16 * 2 * 2, 1)),
    )  # fmt: skip


def vector_discriminator():
    return nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))


@pytest.mark.parametrize("kind", ["image", "vector"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_the_users_networks(method, kind):
    torch.manual_seed(0)
    shape = (3, 8, 8) if kind == "image" else (2,)
    generator = nn.Sequential(nn.Linear(4, int(torch.tensor(shape).prod())), nn.Tanh(), nn.Unflatten(1, shape))
    gan = GANLoss(method, set_size=4, minibatch_set_size=8)
    D = gan.convert_discriminator(image_discriminator(spectral=True) if kind == "image" else vector_discriminator())
    real = torch.randn(16, *shape)
    gan.initialize(D, real)
    rng = torch.Generator().manual_seed(1)
    fake = generator(torch.randn(16, 4))
    loss_d = gan.discriminator_loss(D, real, fake.detach(), generator=rng)
    assert loss_d.shape == () and torch.isfinite(loss_d) and loss_d > 0
    loss_d.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.parameters() if p.requires_grad)
    assert all(p.grad is None for p in generator.parameters())  # fake was detached
    loss_g = gan.generator_loss(D, real, fake, generator=rng)
    assert torch.isfinite(loss_g)
    loss_g.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())


def test_standard_losses_are_the_binary_cross_entropy():
    torch.manual_seed(1)
    gan = GANLoss("standard")
    D = gan.convert_discriminator(vector_discriminator())
    real, fake = torch.randn(8, 2), torch.randn(8, 2) + 1
    expected_d = (
        F.binary_cross_entropy_with_logits(D(real), torch.ones(8, 1))
        + F.binary_cross_entropy_with_logits(D(fake), torch.zeros(8, 1))
    ) / 2
    torch.testing.assert_close(gan.discriminator_loss(D, real, fake), expected_d)
    torch.testing.assert_close(
        gan.generator_loss(D, real, fake), F.binary_cross_entropy_with_logits(D(fake), torch.ones(8, 1))
    )


@pytest.mark.parametrize("method", ["bgan", "mbgan"])
def test_batch_methods_mix_sets_of_set_size_with_the_complement_and_use_the_kl_of_their_mode(method):
    torch.manual_seed(2)
    gan = GANLoss(method, set_size=4, gamma=0.25)
    D = gan.convert_discriminator(vector_discriminator())
    assert all(m.set_size == 4 for m in D.modules() if isinstance(m, bg.EquivariantLinear))
    assert not any(isinstance(m, bg.SetMean) for m in D.modules())  # one logit per sample (reduce=None)
    real, fake = torch.randn(12, 2), torch.randn(12, 2) + 2
    loss = gan.discriminator_loss(D, real, fake, generator=torch.Generator().manual_seed(5))
    batch, target, _ = bg.MixedBatch(gamma=0.25, num_sets=3, complement=True)(
        real, fake, generator=torch.Generator().manual_seed(5)
    )
    assert batch.shape == (24, 2) and target.shape == (6,)
    torch.testing.assert_close(loss, bg.bernoulli_kl_loss(D(batch), target, method, num_sets=6))
    # The generator's loss: -log D on a fresh mixed batch (eq. 5 per set), gradient only through the fakes.
    loss_g = gan.generator_loss(D, real, fake, generator=torch.Generator().manual_seed(6))
    batch, _, _ = bg.MixedBatch(gamma=0.25, num_sets=3, complement=True)(
        real, fake, generator=torch.Generator().manual_seed(6)
    )
    torch.testing.assert_close(loss_g, bg.batch_generator_loss(D(batch), method, num_sets=6))


def test_pacgan_packs_consecutive_samples_and_widens_the_first_layer():
    torch.manual_seed(3)
    gan = GANLoss("pacgan", packing=3)
    original = image_discriminator(spectral=True)
    D = gan.convert_discriminator(original)
    assert isinstance(D[0], bg.Pack) and D[1][0].in_channels == 9
    assert nn.utils.parametrize.is_parametrized(D[1][0], "weight")  # spectral norm kept
    assert original[0].in_channels == 3  # the user's network is untouched
    real, fake = torch.randn(12, 3, 8, 8), torch.randn(12, 3, 8, 8)
    assert D(real).shape == (4, 1)
    assert torch.isfinite(gan.discriminator_loss(D, real, fake))
    with pytest.raises(ValueError, match="packing"):
        gan.discriminator_loss(D, real[:10], fake[:10])


def test_minibatch_and_mbstd_add_their_layer_before_the_last_one():
    gan = GANLoss("minibatch", minibatch_features=6, minibatch_kernel_dims=3, minibatch_set_size=4)
    D = gan.convert_discriminator(image_discriminator(spectral=True))
    features, head = D[5]
    assert isinstance(features, bg.MinibatchDiscrimination) and features.set_size == 4
    assert head.in_features == 64 + 6 and nn.utils.parametrize.is_parametrized(head, "weight")
    real = torch.randn(8, 3, 8, 8)
    before = features.T.detach().clone()
    gan.initialize(D, real)  # improved-gan's data-dependent init rescales T
    assert not torch.equal(features.T, before)
    with pytest.raises(ValueError, match=r"discriminator\.0: minibatch discrimination goes before the last layer"):
        gan.convert_discriminator(nn.Sequential(nn.Conv2d(3, 1, 8)))
    D = GANLoss("mbstd", mbstd_group_size=4).convert_discriminator(image_discriminator())
    assert isinstance(D[5][0], bg.MinibatchStdDev) and D[5][1].in_features == 65
    assert D(real).shape == (8, 1)


def test_mixup_targets_are_its_weights():
    gan = GANLoss("mixup", mixup_alpha=0.4)
    D = gan.convert_discriminator(vector_discriminator())
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    loss = gan.discriminator_loss(D, real, fake, generator=torch.Generator().manual_seed(4))
    weight = gan.mixup_weights(8, torch.Generator().manual_seed(4))
    assert ((weight > 0) & (weight < 1)).all() and weight.std() > 0
    logits = D(torch.lerp(fake, real, weight[:, None]))
    torch.testing.assert_close(loss, bg.bernoulli_kl_loss(logits, weight, "mbgan", num_sets=8))


def test_mbgan_refuses_a_discriminator_with_one_logit_per_set():
    gan = GANLoss("mbgan", set_size=4)
    D = bg.make_equivariant(vector_discriminator(), 4)  # reduce="mean": one logit per set
    with pytest.raises(
        ValueError, match=r"returned shape \(6, 1\) for a batch of 24 samples; one per set: .*reduce=None"
    ):
        gan.discriminator_loss(D, torch.randn(12, 2), torch.randn(12, 2))


def test_a_discriminator_built_for_other_sets_is_refused():
    D = bg.make_equivariant(vector_discriminator(), 8, reduce=None)
    with pytest.raises(
        ValueError,
        match=r"discriminator\.0\.0: this EquivariantLinear uses sets of 8, but the loss mixes sets of set_size=4",
    ):
        GANLoss("bgan", set_size=4).discriminator_loss(D, torch.randn(16, 2), torch.randn(16, 2))
    with pytest.raises(ValueError, match="set_size: the batch of 10 samples does not split into sets of 8"):
        GANLoss("mbgan", set_size=8).discriminator_loss(D, torch.randn(10, 2), torch.randn(10, 2))


def test_conversion_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"discriminator\.2: make_equivariant converts nn\.Conv2d and nn\.Linear"):
        GANLoss("mbgan").convert_discriminator(
            nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.ConvTranspose2d(4, 1, 3))
        )
    with pytest.raises(ValueError, match="discriminator: expected an nn.Module"):
        GANLoss("standard").convert_discriminator(lambda x: x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="wgan"), r"method: expected one of \("),
        (dict(method="mbgan", set_size=0), "set_size"),
        (dict(method="bgan", gamma=0.7), r"gamma: expected a value in \[0, 0.5\]"),
        (dict(method="mixup", mixup_alpha=0.0), "mixup_alpha: expected a positive finite number"),
        (dict(method="pacgan", packing=1.5), "packing"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GANLoss(**kwargs)


def test_bad_batches():
    gan = GANLoss("standard")
    D = vector_discriminator()
    with pytest.raises(ValueError, match=r"fake: expected the real batch's shape \(8, 2\)"):
        gan.discriminator_loss(D, torch.randn(8, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match=r"real: expected a non-empty batch"):
        gan.generator_loss(D, torch.randn(0, 2), torch.randn(0, 2))
    with pytest.raises(ValueError, match="real: expected a tensor"):
        gan.discriminator_loss(D, [1.0, 2.0], torch.randn(2, 2))
    with pytest.raises(ValueError, match=r"discriminator: returned shape \(8, 2\) for a batch of 8 samples"):
        gan.discriminator_loss(nn.Linear(2, 2), torch.randn(8, 2), torch.randn(8, 2))
