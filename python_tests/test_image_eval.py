"""The offline image datasets (scikit-learn's digits), the evaluation classifier and the image metrics."""

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn", reason="the digits datasets need scikit-learn (the train extra)")
scipy_linalg = pytest.importorskip("scipy.linalg", reason="the Fréchet distance needs scipy (the train extra)")

from batchgan_ext.train import digit_classifier as dc  # noqa: E402
from batchgan_ext.train.image_datasets import load_digit_images, make_image_dataset  # noqa: E402
from batchgan_ext.train.image_metrics import (  # noqa: E402
    IMAGE_NULL_GENERATORS,
    channel_classes,
    frechet_distance,
    image_mode_metrics,
    image_null_samples,
)


@pytest.fixture(scope="module")
def classifier(digit_classifier):
    return digit_classifier


# --------------------------------------------------------------------------------------------
# datasets


def test_splits_partition_the_digits_and_hold_out_a_fifth_of_each_class():
    train_images, train_labels = load_digit_images("train")
    test_images, test_labels = load_digit_images("test")
    assert train_images.shape == (1442, 1, 32, 32) and test_images.shape == (355, 1, 32, 32)
    assert train_images.min() >= -1 and train_images.max() <= 1
    assert train_images.min() == -1 and train_images.max() == 1  # [0, 16] mapped onto the whole range
    for digit in range(10):
        n_train, n_test = int((train_labels == digit).sum()), int((test_labels == digit).sum())
        assert n_test == (n_train + n_test) // 5
    # no held-out image is also a training image
    flat_train = train_images.flatten(1)
    distances = torch.cdist(test_images.flatten(1), flat_train).min(1).values
    assert (distances > 0).all()


def test_unknown_split_or_dataset_is_an_error():
    with pytest.raises(ValueError, match="split"):
        load_digit_images("validation")
    with pytest.raises(ValueError, match="dataset"):
        make_image_dataset("mnist")


@pytest.mark.parametrize("name,channels,modes", [("digits", 1, 10), ("stacked-digits", 3, 1000)])
def test_samples_are_reproducible_and_carry_their_modes(name, channels, modes):
    dataset = make_image_dataset(name)
    assert dataset.num_modes == modes and dataset.shape == (channels, 32, 32)
    x1, m1 = dataset.sample_with_modes(64, torch.Generator().manual_seed(3))
    x2, m2 = dataset.sample_with_modes(64, torch.Generator().manual_seed(3))
    assert torch.equal(x1, x2) and torch.equal(m1, m2)
    assert x1.shape == (64, channels, 32, 32) and m1.min() >= 0 and m1.max() < modes
    # the mode is the channels' classes read as a base-10 number: find each channel among the digits
    images, labels = dataset.images.flatten(1), dataset.labels
    for i in range(8):
        digits = [int(labels[(images == x1[i, c].flatten()).all(1)][0]) for c in range(channels)]
        assert int(m1[i]) == int("".join(map(str, digits)))


def test_stacked_digits_channels_are_drawn_independently():
    _, modes = make_image_dataset("stacked-digits").sample_with_modes(20000, torch.Generator().manual_seed(0))
    first, last = modes // 100, modes % 10
    assert (first != last).float().mean() > 0.85  # independent channels: equal classes about 10% of the time
    assert len(torch.unique(modes)) > 990


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_bad_sample_count_is_an_error(n):
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        make_image_dataset("digits").sample(n)


# --------------------------------------------------------------------------------------------
# Fréchet distance


def test_frechet_distance_matches_scipy_sqrtm_on_a_nonsingular_case():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 12, generator=g, dtype=torch.float64)
    b = torch.randn(400, 12, generator=g, dtype=torch.float64) @ torch.randn(12, 12, generator=g, dtype=torch.float64)
    b = b + 0.7
    ca, cb = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    expected = float(((a.mean(0) - b.mean(0)) ** 2).sum()) + np.trace(ca + cb - 2 * scipy_linalg.sqrtm(ca @ cb).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_a_shift_and_of_singular_features():
    x = torch.randn(2000, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(x, x + 0.5) == pytest.approx(6 * 0.25, rel=1e-9)  # equal covariances: ||mu_a - mu_b||^2
    dead = torch.cat([x, torch.zeros(2000, 3, dtype=torch.float64)], dim=1)  # dead ReLU units: singular covariance
    assert frechet_distance(dead, dead + 0.5) == pytest.approx(9 * 0.25, rel=1e-9)


# --------------------------------------------------------------------------------------------
# the classifier and the metrics


def test_classifier_reaches_97_percent_on_held_out_digits(classifier):
    model, _ = classifier
    assert dc.accuracy(model, "test") >= 0.97


def test_classifier_is_loaded_from_the_cache_without_retraining(classifier, monkeypatch):
    model, path = classifier

    def no_training():
        raise AssertionError("retrained although the cache holds the classifier")

    monkeypatch.setattr(dc, "train_digit_classifier", no_training)
    loaded = dc.load_digit_classifier(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BATCHGAN_CACHE_DIR", str(tmp_path))
    assert dc.cache_dir() == str(tmp_path)


def test_malformed_cache_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "digit_classifier.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="digit_classifier.pt"):
        dc.load_digit_classifier(str(path))
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="digit_classifier.pt"):
        dc.load_digit_classifier(str(path))


def test_real_samples_cover_every_mode_and_nulls_do_worse(classifier):
    model, _ = classifier
    dataset = make_image_dataset("stacked-digits")
    real = image_mode_metrics(dataset.sample(6000, torch.Generator().manual_seed(1)), dataset, model)
    assert real["num_modes"] == 1000 and real["num_samples"] == 6000
    assert real["modes_covered"] >= 990 and real["reverse_kl"] < 0.25
    for name in IMAGE_NULL_GENERATORS:
        null = image_mode_metrics(image_null_samples(name, dataset, 6000), dataset, model)
        assert null["reverse_kl"] > real["reverse_kl"] + 0.2, name
        assert null["frechet_distance"] > 10 * real["frechet_distance"], name


def test_a_collapsed_generator_covers_one_mode(classifier):
    model, _ = classifier
    dataset = make_image_dataset("digits")
    one = dataset.sample(1, torch.Generator().manual_seed(0)).expand(500, -1, -1, -1).contiguous()
    metrics = image_mode_metrics(one, dataset, model)
    assert metrics["modes_covered"] == 1
    assert metrics["reverse_kl"] == pytest.approx(np.log(10), rel=1e-9)
    assert int(channel_classes(model, one[:1])[0, 0]) in range(10)


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.zeros(10, 1, 32, 32), "shape"),
        (torch.zeros(1, 3, 32, 32), "at least 2"),
        (torch.zeros(10, 3, 32, 32, dtype=torch.int64), "floating-point"),
        (torch.full((10, 3, 32, 32), float("nan")), "NaN"),
    ],
)
def test_bad_samples_are_errors_naming_the_argument(classifier, bad, match):
    model, _ = classifier
    with pytest.raises(ValueError, match=f"samples: .*{match}"):
        image_mode_metrics(bad, make_image_dataset("stacked-digits"), model)


def test_unknown_null_generator_is_an_error():
    with pytest.raises(ValueError, match="name: expected one of"):
        image_null_samples("null-zero", make_image_dataset("digits"), 10)
