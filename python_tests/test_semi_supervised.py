"""Semi-supervised GAN (Salimans et al. 2016, section 5): the (K+1)-class discriminator's D(x) =
Z/(Z+1), its loss against a hand-computed case and gradcheck, the class-balanced labelled subset,
input checks, the feature layer, and a smoke run of the CLI."""

import json
import math
import os

import pytest
import torch
from torch import nn

pytest.importorskip("sklearn", reason="the digits are scikit-learn's (the train extra)")

from batchgan_ext.train.image_datasets import load_digit_images
from batchgan_ext.train.semi_supervised import (
    SemiSupervisedConfig,
    SemiSupervisedDiscriminator,
    discriminator_loss,
    generator_loss,
    labeled_subset,
    main,
    make_digit_body,
    real_logit,
    real_probability,
    supervised_loss,
    train_semi_supervised,
    unsupervised_loss,
)

LN3 = math.log(3.0)


def test_discriminator_loss_matches_a_hand_computed_case():
    # K = 2. Labelled: [1, 0] with y=0 -> log(1 + e^-1); [0, 2] with y=0 -> log(1 + e^2).
    labeled = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0])
    # Unlabelled: Z = 2 -> D = 2/3, -log D = log 1.5; Z = 1 + 3 = 4 -> D = 4/5, -log D = log 1.25.
    unlabeled = torch.tensor([[0.0, 0.0], [0.0, LN3]], dtype=torch.float64)
    # Fake (a batch of another size): Z = 3 + 1 = 4 -> D = 4/5, -log(1 - D) = log 5.
    fake = torch.tensor([[LN3, 0.0]], dtype=torch.float64)
    sup = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(2))) / 2
    unsup = (math.log(1.5) + math.log(1.25)) / 2 + math.log(5.0)
    assert supervised_loss(labeled, labels).item() == pytest.approx(sup, rel=1e-12)
    assert unsupervised_loss(unlabeled, fake).item() == pytest.approx(unsup, rel=1e-12)
    assert discriminator_loss(labeled, labels, unlabeled, fake).item() == pytest.approx(sup + unsup, rel=1e-12)
    weighted = discriminator_loss(labeled, labels, unlabeled, fake, unsupervised_weight=0.5)
    assert weighted.item() == pytest.approx(sup + 0.5 * unsup, rel=1e-12)


def test_real_probability_is_z_over_z_plus_one():
    logits = torch.randn(64, 10, dtype=torch.float64) * 3
    z = logits.exp().sum(1)
    torch.testing.assert_close(real_probability(logits), z / (z + 1), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(real_logit(logits), z.log(), rtol=1e-12, atol=1e-14)
    # Large logits: Z overflows float64's exp, the logsumexp form does not.
    big = torch.tensor([[1000.0, 999.0], [-1000.0, -1000.0]], dtype=torch.float64)
    assert real_probability(big)[0].item() == 1.0
    assert real_logit(big).tolist() == pytest.approx([1000.0 + math.log1p(math.exp(-1.0)), -1000.0 + math.log(2.0)])
    assert torch.isfinite(unsupervised_loss(big, big)).item()


def test_losses_gradcheck_float64():
    labeled = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 1, 0])
    unlabeled = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: supervised_loss(a, labels), (labeled,))
    assert torch.autograd.gradcheck(unsupervised_loss, (unlabeled, fake))
    assert torch.autograd.gradcheck(
        lambda a, b, c: discriminator_loss(a, labels, b, c, unsupervised_weight=0.7), (labeled, unlabeled, fake)
    )


def test_unsupervised_gradient_reaches_every_logit_as_softmax_times_bce_gradient():
    # d/dl_k of -log sigmoid(lse l) = -(1 - D) softmax_k(l): every class logit of a real image is pushed up.
    real = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(3, 4, dtype=torch.float64)
    unsupervised_loss(real, fake).backward()
    d = real_probability(real.detach())
    expected = -(1 - d)[:, None] * torch.softmax(real.detach(), 1) / 3
    torch.testing.assert_close(real.grad, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("num_labels", [10, 50, 100])
def test_labeled_subset_is_class_balanced_deterministic_and_from_the_training_split(num_labels):
    images, labels = load_digit_images("train")
    index = labeled_subset(labels, num_labels, seed=3)
    assert index.numel() == num_labels and index.unique().numel() == num_labels
    assert torch.bincount(labels[index], minlength=10).tolist() == [num_labels // 10] * 10
    assert torch.equal(index, labeled_subset(labels, num_labels, seed=3))
    assert not torch.equal(index, labeled_subset(labels, num_labels, seed=4))
    test_images, _ = load_digit_images("test")
    distance = torch.cdist(images[index].flatten(1), test_images.flatten(1))
    assert distance.min() > 0  # no labelled image is a test image (the digits have no duplicates)


def test_bad_inputs_raise_value_errors_naming_the_argument():
    _, labels = load_digit_images("train")
    with pytest.raises(ValueError, match="num_labels"):
        labeled_subset(labels, 15, seed=0)
    with pytest.raises(ValueError, match="num_labels"):
        labeled_subset(labels, labels.numel() + 10, seed=0)
    with pytest.raises(ValueError, match="num_labels"):
        SemiSupervisedConfig(num_labels=25)
    two = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="logits_labeled"):
        supervised_loss(torch.zeros(4), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels"):
        supervised_loss(two, torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels"):
        supervised_loss(two, torch.full((4,), 2))
    with pytest.raises(ValueError, match="logits_fake"):
        discriminator_loss(two, torch.zeros(4, dtype=torch.int64), two, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="logits_unlabeled"):
        unsupervised_loss(torch.zeros(0, 2), two)
    with pytest.raises(ValueError, match="logits"):
        real_logit(torch.zeros(4, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="unsupervised_weight"):
        discriminator_loss(two, torch.zeros(4, dtype=torch.int64), two, two, unsupervised_weight=-1.0)
    with pytest.raises(ValueError, match="classifier output"):
        SemiSupervisedDiscriminator(nn.Linear(3, 4), num_classes=10)(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="feature_layer"):
        SemiSupervisedDiscriminator(make_digit_body(), feature_layer="nope")
    with pytest.raises(ValueError, match="--labels"):
        main(["--labels", "15", "--out", "unused"])


def test_more_labels_per_class_than_a_class_holds_raises():
    _, labels = load_digit_images("train")
    smallest = int(torch.bincount(labels).min())
    with pytest.raises(ValueError, match="num_labels"):
        labeled_subset(labels, 10 * (smallest + 1), seed=0)


def test_feature_layer_is_the_input_of_the_last_layer_or_a_named_module():
    body = make_digit_body(width=4).eval()
    x = torch.randn(5, 1, 32, 32)
    logits, features = SemiSupervisedDiscriminator(body).logits_and_features(x)
    torch.testing.assert_close(features, body[:-1](x))
    torch.testing.assert_close(logits, body(x))
    _, conv = SemiSupervisedDiscriminator(body, feature_layer="2").logits_and_features(x)
    torch.testing.assert_close(conv, body[:3](x).flatten(1))
    # Feature matching's gradient reaches the generated images through the features.
    fake = torch.randn(5, 1, 32, 32, requires_grad=True)
    _, fake_features = SemiSupervisedDiscriminator(body).logits_and_features(fake)
    generator_loss(features.detach(), fake_features).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_training_is_deterministic_per_seed():
    config = SemiSupervisedConfig(num_labels=10, seed=1, steps=2, batch_size=8, eval_every=1)
    a, b = train_semi_supervised(config), train_semi_supervised(config)
    assert a["curves"] == b["curves"] and len(a["curves"]["gan"]) == 2
    assert a["unlabeled_size"] == load_digit_images("train")[1].numel() - 10


def test_cli_smoke_writes_resumable_json_and_a_table(tmp_path, capsys):
    out = str(tmp_path / "semi")
    args = ["--labels", "10,20", "--seeds", "2", "--steps", "2", "--batch-size", "8", "--eval-every", "1"]
    records = main([*args, "--out", out, "--quiet"])
    names = sorted(os.listdir(out))
    assert names == [
        "labels10-seed0.json",
        "labels10-seed1.json",
        "labels20-seed0.json",
        "labels20-seed1.json",
        "table.md",
    ]
    with open(os.path.join(out, "labels20-seed1.json")) as f:
        record = json.load(f)
    assert record["num_labels"] == 20 and record["seed"] == 1 and record["config"]["steps"] == 2
    for key in ("gan_test_error", "baseline_test_error", "baseline_best_test_error"):
        assert 0.0 <= record[key] <= 1.0
    table = open(os.path.join(out, "table.md")).read()
    assert "| 10 | 2 |" in table and "| 20 | 2 |" in table and "±" in table
    # Resumed: nothing is retrained (the files are untouched), the same records come back.
    mtimes = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in names if n.endswith(".json")}
    capsys.readouterr()
    again = main([*args, "--out", out])
    assert capsys.readouterr().out.count("finished, skipped") == 4
    assert again == json.loads(json.dumps(records))
    assert mtimes == {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in mtimes}
    with pytest.raises(ValueError, match="--out"):
        main([*args, "--steps", "3", "--out", out, "--quiet"])  # another budget in the same folder
