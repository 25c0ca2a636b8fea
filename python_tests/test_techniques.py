"""Salimans et al. (2016)'s techniques in the training layer: feature matching, historical averaging,
one-sided label smoothing (GANLoss, Trainer, CLI) and the inception score."""

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from batchgan_ext import make_equivariant
from batchgan_ext.train import GANLoss, TrainConfig, Trainer
from batchgan_ext.train.cli import main as cli_main
from batchgan_ext.train.digit_classifier import DigitClassifier
from batchgan_ext.train.image_datasets import make_image_dataset
from batchgan_ext.train.image_metrics import _inception_score, image_mode_metrics, inception_score
from batchgan_ext.train.results import aggregate, format_table
from batchgan_ext.train.techniques import (
    HistoricalAveraging,
    discriminator_features,
    feature_layer,
    feature_matching_loss,
)

# ---------------------------------------------------------------------------------------------
# feature matching


def test_feature_matching_loss_hand_computed():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    fake = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])  # mean (1, 1): a different batch size
    assert feature_matching_loss(real, fake).item() == pytest.approx(1.0 + 4.0)
    # maps are flattened: (N, C, H, W) features, every entry one feature
    real_maps, fake_maps = torch.arange(8.0).view(2, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    assert feature_matching_loss(real_maps, fake_maps).item() == pytest.approx(sum((v + 2.0) ** 2 for v in range(4)))


def test_feature_matching_loss_gradcheck():
    real = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(feature_matching_loss, (real, fake))
    # d/d fake_j = -2 (mean real - mean fake) / M
    (grad,) = torch.autograd.grad(feature_matching_loss(real, fake), fake)
    expected = -2 * (real.mean(0) - fake.mean(0)).detach() / 4
    torch.testing.assert_close(grad, expected.expand(4, 3))


@pytest.mark.parametrize(
    "real,fake,match",
    [
        ([[1.0]], torch.ones(1, 1), "real_features: expected a tensor"),
        (torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3), "real_features: expected a floating-point"),
        (torch.ones(3), torch.ones(3), r"real_features: expected a non-empty batch .* got \(3,\)"),
        (torch.ones(2, 3), torch.ones(0, 3), "fake_features: expected a non-empty batch"),
        (torch.ones(2, 3), torch.ones(2, 4), r"per-sample shape of real_features \(3,\), got \(4,\)"),
        (torch.ones(2, 3), torch.ones(2, 3, dtype=torch.float64), "dtype and device"),
    ],
)
def test_feature_matching_loss_bad_inputs(real, fake, match):
    with pytest.raises(ValueError, match=match):
        feature_matching_loss(real, fake)


def mlp_discriminator():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 1))


def test_discriminator_features_default_and_named_layer():
    d = mlp_discriminator()
    x = torch.randn(5, 2)
    out, features = discriminator_features(d, x)
    torch.testing.assert_close(features, d[:4](x))  # the input of the last nn.Linear
    torch.testing.assert_close(out, d(x))
    assert feature_layer(d) == ("4", d[4], True)
    _, named = discriminator_features(d, x, layer="2")  # a named submodule: its output
    torch.testing.assert_close(named, d[:3](x))
    assert not d[4]._forward_hooks and not d[2]._forward_hooks  # the hooks are removed
    # the equivariant layers of a converted D count as its linear layers
    equivariant = make_equivariant(d, 4, reduce=None)
    name, layer, use_input = feature_layer(equivariant)
    assert type(layer).__name__ == "EquivariantLinear" and use_input


def test_discriminator_features_bad_inputs():
    d = mlp_discriminator()
    with pytest.raises(ValueError, match="discriminator: expected an nn.Module"):
        discriminator_features(lambda x: x, torch.randn(2, 2))
    with pytest.raises(ValueError, match="no submodule 'head'"):
        discriminator_features(d, torch.randn(2, 2), layer="head")
    with pytest.raises(ValueError, match="has no nn.Linear / nn.Conv2d"):
        discriminator_features(nn.Sequential(nn.ReLU()), torch.randn(2, 2))
    unused = nn.ModuleDict({"used": nn.Linear(2, 1), "spare": nn.Linear(2, 1)})
    unused.forward = lambda x: unused["used"](x)
    with pytest.raises(ValueError, match="spare was not called"):
        discriminator_features(unused, torch.randn(2, 2))
    with pytest.raises(ValueError, match="x: expected a tensor"):
        discriminator_features(d, [[0.0, 1.0]])


@pytest.mark.parametrize("method", ["standard", "minibatch", "mbstd", "pacgan", "mixup", "bgan", "mbgan"])
def test_gan_loss_feature_matching_every_method(method):
    """G's loss is the feature distance through the method's (converted) D; the gradient reaches G,
    and nothing flows back into the real batch."""
    gan = GANLoss(method, set_size=4, packing=2, minibatch_set_size=8, feature_matching=True)
    d = gan.convert_discriminator(mlp_discriminator())
    real = torch.randn(16, 2, requires_grad=True)
    gan.initialize(d, real.detach())
    g = nn.Linear(3, 2)
    fake = g(torch.randn(16, 3))
    loss = gan.generator_loss(d, real, fake)
    _, f_real = discriminator_features(d, real.detach())
    _, f_fake = discriminator_features(d, fake)
    torch.testing.assert_close(loss, ((f_real.mean(0) - f_fake.mean(0)) ** 2).sum())
    loss.backward()
    assert real.grad is None
    assert g.weight.grad is not None and g.weight.grad.abs().sum() > 0


def test_gan_loss_feature_matching_named_layer_and_bad_options():
    d = mlp_discriminator()
    gan = GANLoss("standard", feature_matching=True, feature_layer="1")
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    expected = ((d[:2](real).mean(0) - d[:2](fake).mean(0)) ** 2).sum()
    torch.testing.assert_close(gan.generator_loss(d, real, fake), expected)
    assert "feature_layer='1'" in repr(gan)
    for kwargs, match in [
        (dict(feature_matching=1), "feature_matching"),
        (dict(one_sided_smoothing="yes"), "one_sided_smoothing"),
        (dict(feature_layer=""), "feature_layer"),
    ]:
        with pytest.raises(ValueError, match=match):
            GANLoss("standard", **kwargs)


# ---------------------------------------------------------------------------------------------
# one-sided label smoothing


def bernoulli_kl(u, logit):
    """KL(B(u) || B(sigmoid(logit))) in float64, by its definition (0 log 0 = 0)."""
    u, d = u.double(), torch.sigmoid(logit.double())
    return torch.xlogy(u, u / d) + torch.xlogy(1 - u, (1 - u) / (1 - d))


@pytest.mark.parametrize("smoothing", [False, True])
@pytest.mark.parametrize("method", ["standard", "pacgan", "mixup", "bgan", "mbgan"])
def test_one_sided_smoothing_targets(method, smoothing):
    """Real target 0.9, fakes 0; mixup's lam and bgan/mbgan's real fraction scaled by 0.9."""
    gan = GANLoss(method, set_size=4, packing=2, one_sided_smoothing=smoothing)
    d = gan.convert_discriminator(mlp_discriminator())
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    scale = 0.9 if smoothing else 1.0
    loss = gan.discriminator_loss(d, real, fake, generator=torch.Generator().manual_seed(7))
    draws = torch.Generator().manual_seed(7)  # the same draws as the loss made
    with torch.no_grad():
        if method in ("standard", "pacgan"):
            logits = torch.cat([d(real), d(fake)]).view(-1)
            half = logits.shape[0] // 2
            target = torch.cat([torch.full((half,), scale), torch.zeros(half)])
            expected = bernoulli_kl(target, logits).mean()
        elif method == "mixup":
            lam = gan.mixup_weights(16, draws)
            logits = d(torch.lerp(fake, real, lam.view(-1, 1))).view(-1)
            expected = bernoulli_kl(scale * lam, logits).mean()
        else:
            batch, fraction, _ = gan._mixer(16)(real, fake, generator=draws)
            logits = d(batch).view(-1, 4)  # 4 sets of 4
            target = scale * fraction
            if method == "bgan":  # eq. 13: the set's mean logit
                expected = bernoulli_kl(target, logits.mean(1)).mean()
            else:  # eq. 14: per sample against its set's target
                expected = bernoulli_kl(target.view(-1, 1).expand(-1, 4), logits).mean()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    assert gan.real_target == scale
    # G's loss does not change with smoothing
    plain = GANLoss(method, set_size=4, packing=2)
    torch.testing.assert_close(
        gan.generator_loss(d, real, fake, generator=torch.Generator().manual_seed(1)),
        plain.generator_loss(d, real, fake, generator=torch.Generator().manual_seed(1)),
    )


# ---------------------------------------------------------------------------------------------
# historical averaging


def test_historical_averaging_running_mean_penalty_and_gradient():
    layer = nn.Linear(3, 2)
    averaging = HistoricalAveraging(layer, weight=0.5)
    assert averaging.penalty().item() == 0.0  # the mean starts at the parameters
    history = [[p.detach().clone() for p in layer.parameters()]]
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.3)
    for _ in range(4):
        optimizer.zero_grad()
        (layer(torch.randn(5, 3)).square().sum() + averaging.penalty()).backward()
        optimizer.step()
        averaging.update()
        history.append([p.detach().clone() for p in layer.parameters()])
    means = [torch.stack(values).mean(0) for values in zip(*history)]
    for mean, got in zip(means, averaging.means):
        torch.testing.assert_close(got, mean)
    assert averaging.count == 5
    expected = 0.5 * sum(((p - m) ** 2).sum() for p, m in zip(layer.parameters(), means))
    penalty = averaging.penalty()
    torch.testing.assert_close(penalty, expected)
    grads = torch.autograd.grad(penalty, list(layer.parameters()))
    for g, p, m in zip(grads, layer.parameters(), means):
        torch.testing.assert_close(g, 2 * 0.5 * (p - m).detach())


def test_historical_averaging_state_dict_roundtrip_and_bad_inputs():
    layer = nn.Linear(3, 2)
    averaging = HistoricalAveraging(layer.parameters(), 0.1)
    with torch.no_grad():
        layer.weight.add_(1.0)
    averaging.update()
    copy = HistoricalAveraging(layer, 0.1)
    copy.load_state_dict(averaging.state_dict())
    assert copy.count == 2 and all(torch.equal(a, b) for a, b in zip(copy.means, averaging.means))
    for weight in (0, -1.0, math.inf, math.nan, True, "0.1"):
        with pytest.raises(ValueError, match="weight"):
            HistoricalAveraging(layer, weight)
    with pytest.raises(ValueError, match="non-empty"):
        HistoricalAveraging([], 0.1)
    with pytest.raises(ValueError, match="floating-point"):
        HistoricalAveraging([torch.ones(2, dtype=torch.int64)], 0.1)
    with pytest.raises(ValueError, match="iterable of parameters"):
        HistoricalAveraging(3, 0.1)
    with pytest.raises(ValueError, match="expected 2 means"):
        copy.load_state_dict({"count": 2, "means": [torch.zeros(2, 3)]})
    with pytest.raises(ValueError, match="shape"):
        copy.load_state_dict({"count": 2, "means": [torch.zeros(3, 3), torch.zeros(2)]})
    with pytest.raises(ValueError, match="count"):
        copy.load_state_dict({"count": 0, "means": averaging.means})


# ---------------------------------------------------------------------------------------------
# trainer and CLI

SMALL = dict(dataset="ring8", steps=4, batch_size=32, set_size=8, hidden=16, g_layers=2, d_layers=2, eval_samples=200)
OPTIONS = [
    dict(one_sided_smoothing=True),
    dict(feature_matching=True),
    dict(historical_averaging=0.1),
]


@pytest.mark.parametrize("method", ["standard", "mbgan"])
@pytest.mark.parametrize("options", OPTIONS)
def test_trainer_with_each_technique(method, options):
    trainer = Trainer(TrainConfig(method=method, **SMALL, **options))
    trainer.train(progress=False)
    assert trainer.step == 4 and all(math.isfinite(v) for v in trainer.history["loss_g"])
    assert trainer.loss.one_sided_smoothing == options.get("one_sided_smoothing", False)
    assert trainer.loss.feature_matching == options.get("feature_matching", False)
    assert bool(trainer.historical) == ("historical_averaging" in options)
    if trainer.historical:
        assert trainer.historical["discriminator"].count == 5 and trainer.historical["generator"].count == 5


def test_trainer_historical_averaging_resumes_exactly(tmp_path):
    config = TrainConfig(method="standard", **SMALL, historical_averaging=0.5, feature_matching=True)
    straight = Trainer(config)
    straight.train(progress=False)
    first = Trainer(config)
    first.train(steps=2, progress=False)
    path = str(tmp_path / "run.pt")
    first.save(path)
    resumed = Trainer.from_checkpoint(path)
    assert resumed.historical["generator"].count == 3
    resumed.train(progress=False)
    for a, b in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.historical["discriminator"].means, resumed.historical["discriminator"].means):
        assert torch.equal(a, b)
    # the penalty changes training: without it the same run ends elsewhere
    plain = Trainer(dataclasses.replace(config, historical_averaging=0.0))
    plain.train(progress=False)
    assert not torch.equal(plain.generator[0].weight, straight.generator[0].weight)


@pytest.mark.parametrize(
    "options,match",
    [
        (dict(one_sided_smoothing=1), "one_sided_smoothing"),
        (dict(feature_matching="no"), "feature_matching"),
        (dict(historical_averaging=-0.1), "historical_averaging"),
        (dict(historical_averaging=math.inf), "historical_averaging"),
        (dict(historical_averaging=True), "historical_averaging"),
    ],
)
def test_train_config_rejects_bad_technique_options(options, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**SMALL, **options).validate()


def test_cli_smoke_with_every_technique(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--dataset", "ring8", "--method", "standard", "--steps", "3", "--batch-size", "32", "--hidden", "16"]
    argv += ["--eval-samples", "200", "--one-sided-smoothing", "--feature-matching", "--historical-averaging", "0.05"]
    assert cli_main([*argv, "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "metrics.json").read_text())["runs"][0]["config"]
    assert config["one_sided_smoothing"] and config["feature_matching"] and config["historical_averaging"] == 0.05
    with pytest.raises(SystemExit):
        cli_main(["--dataset", "ring8", "--historical-averaging", "-1", "--out", str(out), "--no-progress"])
    assert "historical_averaging" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# inception score


def test_inception_score_hand_computed():
    # two samples, one channel, 2 classes: p(y|x) = (1/4, 3/4) and (3/4, 1/4), p(y) = (1/2, 1/2)
    logits = torch.tensor([[[0.0, math.log(3.0)]], [[math.log(3.0), 0.0]]], dtype=torch.float64)
    kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert _inception_score(logits) == pytest.approx(math.exp(kl), rel=1e-12)
    # confident and spread evenly over all K^C joint classes: the maximum K^C; all alike: 1
    classes = torch.cartesian_prod(torch.arange(3), torch.arange(3))  # 9 samples, 2 channels of 3 classes
    confident = 50.0 * nn.functional.one_hot(classes, 3).double()
    assert _inception_score(confident) == pytest.approx(9.0, rel=1e-9)
    assert _inception_score(confident[:1].expand(9, 2, 3)) == pytest.approx(1.0, rel=1e-9)


def test_inception_score_joint_matches_brute_force():
    logits = torch.randn(7, 2, 4, dtype=torch.float64)
    q = torch.softmax(logits, -1)
    joint = torch.einsum("na,nb->nab", q[:, 0], q[:, 1]).reshape(7, 16)  # channel 0 the leading digit
    p = joint.mean(0)
    expected = math.exp(float((joint * (joint / p).log()).sum(1).mean()))
    assert _inception_score(logits) == pytest.approx(expected, rel=1e-10)


def test_inception_score_in_image_metrics_and_bad_inputs():
    torch.manual_seed(0)
    classifier = DigitClassifier().eval()  # untrained: the score's plumbing, not its value
    dataset = make_image_dataset("stacked-digits")
    samples = dataset.sample(40, torch.Generator().manual_seed(0))
    score = inception_score(classifier, samples)
    with torch.no_grad():
        logits = classifier(samples.reshape(120, 1, 32, 32)).reshape(40, 3, 10)
    assert score == pytest.approx(_inception_score(logits), rel=1e-6)
    assert 1.0 <= score <= 1000.0
    metrics = image_mode_metrics(samples, dataset, classifier, reference=samples)
    assert metrics["inception_score"] == pytest.approx(score, rel=1e-5)
    with pytest.raises(ValueError, match="classifier"):
        inception_score(nn.Linear(2, 2), samples)
    with pytest.raises(ValueError, match=r"\(N, C, 32, 32\)"):
        inception_score(classifier, torch.zeros(4, 1, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        inception_score(classifier, torch.full((2, 1, 32, 32), math.nan))


def test_tables_of_records_without_inception_score():
    """Records written before the inception score: the column shows '-', the verdict ignores it."""
    base = dict(dataset="digits", num_modes=10, modes_covered=10, reverse_kl=0.01, frechet_distance=2.0, seed=0)
    rows = aggregate([dict(base, method="standard"), dict(base, method="standard", seed=1)])
    null = dict(base, method="null-noise", seed=None, reverse_kl=1.0, frechet_distance=99.0, inception_score=1.5)
    lines = format_table(rows, [null], markdown=True).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = dict(zip(header, (c.strip() for c in lines[-1].strip("|").split("|"))))
    null_cells = dict(zip(header, (c.strip() for c in lines[2].strip("|").split("|"))))
    assert "inception_score" not in rows[0] and cells["method"] == "standard"
    assert cells["inception score"] == "-" and null_cells["inception score"] == "1.50"
    assert cells["clears null rows"] == "yes"
