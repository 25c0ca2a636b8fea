"""The two-rectangles data, its metric, Sample Correction and Pixel-wise Combination Regularization ("On the
Anomalous Generalization of GANs"), through the Trainer and the CLI."""

import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("scipy.ndimage", reason="the rectangle count uses scipy.ndimage.label (the train extra)")

from batchgan_ext.train import METHODS, TrainConfig, Trainer
from batchgan_ext.train.anomalous import NegativeBatch, correct_replaced
from batchgan_ext.train.cli import main as cli_main
from batchgan_ext.train.rectangles import (
    RECTANGLE_NULL_GENERATORS,
    RectangleImages,
    make_rectangle_dataset,
    nearest_training_distances,
    rectangle_counts,
    rectangle_metrics,
    rectangle_null_samples,
    render_rectangles,
)
from batchgan_ext.train.results import null_records

TINY = dict(
    dataset="two-rectangles", steps=2, batch_size=16, set_size=4, hidden=4, latent_dim=8, eval_samples=64,
    minibatch_set_size=8, log_every=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def two():
    return make_rectangle_dataset("two-rectangles")


def blank(n: int = 1) -> torch.Tensor:
    return -torch.ones(n, 1, 32, 32)


def draw(image: torch.Tensor, row: int, col: int, height: int = 8, width: int = 8) -> torch.Tensor:
    image[0, 0, row : row + height, col : col + width] = 1.0
    return image


# -------------------------------------------------------------------------------------------
# dataset


def test_two_rectangles_dataset_is_the_papers(two):
    assert len(two) == 25600 and two.images.shape == (25600, 1, 32, 32) and two.images.dtype == torch.float32
    assert set(two.images.unique().tolist()) == {-1.0, 1.0}
    # every training image is exactly two 8x8 squares by the metric
    counts, clean = rectangle_counts(two.images)
    assert (counts == 2).all() and clean.all()
    assert two.is_correct(two.images[:1000]).all() and not two.is_correct(two.combinations[:1000]).any()
    # ... placed apart: independently of the metric, from the corners (at least one free row or column)
    c = two.corners.numpy()
    assert (np.abs(c[:, 0] - c[:, 1]).max(1) >= 9).all() and c.min() >= 0 and c.max() <= 24
    # ... and drawn at those corners: a naive loop over 50 images
    for i in range(50):
        expected = blank()[0]
        for r, q in c[i]:
            expected[0, r : r + 8, q : q + 8] = 1.0
        assert torch.equal(two.images[i], expected)


def test_combinations_are_and_or_of_the_pairs(two):
    first, second = two.images[0::2], two.images[1::2]
    assert not (first == second).all(dim=(1, 2, 3)).any()  # a different rectangle removed each time
    # in {-1, 1}, AND is the pixel-wise minimum and OR the maximum
    assert torch.equal(two.combinations[0::2], torch.minimum(first, second))
    assert torch.equal(two.combinations[1::2], torch.maximum(first, second))
    counts, clean = rectangle_counts(two.combinations)
    assert (counts[0::2] == 1).all() and (counts[1::2] == 3).all() and clean.all()  # Appendix F: 1 and 3


def test_single_pair_variant_of_fig3():
    pair = make_rectangle_dataset("three-rectangles-pair")
    assert len(pair) == 2
    assert rectangle_counts(pair.images)[0].tolist() == [3, 3]
    assert rectangle_counts(pair.combinations)[0].tolist() == [2, 4]  # AND: the two shared, OR: four
    assert pair.is_correct(pair.images).all()


def test_dataset_is_determined_by_its_seed():
    a, b, c = RectangleImages(num_images=40, seed=3), RectangleImages(num_images=40, seed=3), RectangleImages(
        num_images=40, seed=4
    )  # fmt: skip
    assert torch.equal(a.images, b.images) and torch.equal(a.combinations, b.combinations)
    assert not torch.equal(a.images, c.images)
    x = a.sample(32, torch.Generator().manual_seed(5))
    assert torch.equal(x, a.sample(32, torch.Generator().manual_seed(5))) and x.shape == (32, 1, 32, 32)
    # every sample is a training image
    assert ((x[:, None] == a.images[None]).all(dim=(2, 3, 4))).any(1).all()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_rectangles=0), "num_rectangles"),
        (dict(num_rectangles=9), "num_rectangles"),
        (dict(num_images=3), "num_images"),
        (dict(num_images=True), "num_images"),
        (dict(seed=-1), "seed"),
    ],
)
def test_dataset_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RectangleImages(**kwargs)


def test_bad_names_and_draws(two):
    with pytest.raises(ValueError, match="dataset"):
        make_rectangle_dataset("three-rectangles")
    with pytest.raises(ValueError, match="n: "):
        two.sample(0)
    with pytest.raises(ValueError, match="corners"):
        render_rectangles([[[25, 0]]])
    with pytest.raises(ValueError, match="name"):
        rectangle_null_samples("null-blend", two, 4)


# -------------------------------------------------------------------------------------------
# metric


def hand_built() -> tuple[torch.Tensor, list[int], list[bool]]:
    """Images, their component counts and whether each is correct (two exact 8x8 squares, nothing else)."""
    cases = [
        (blank(), 0, False),
        (draw(blank(), 3, 4), 1, False),
        (draw(draw(blank(), 0, 0), 20, 20), 2, True),
        (draw(draw(draw(blank(), 0, 0), 0, 12), 20, 5), 3, False),
        (draw(draw(blank(), 0, 0), 0, 8), 1, False),  # touching along an edge: one 8x16 bar
        (draw(draw(blank(), 0, 0), 8, 8), 1, False),  # touching at a corner: one blob (8-connectivity)
        (draw(draw(blank(), 0, 0), 0, 9), 2, True),  # one free column between them: two squares
        (draw(draw(blank(), 0, 0), 20, 20, 8, 9), 2, False),  # an 8x9 rectangle is not an 8x8 square
        (draw(draw(blank(), 0, 0), 20, 20, 9, 9), 2, False),  # nor a 9x9 square
        (draw(draw(draw(blank(), 0, 0), 20, 20), 30, 0, 1, 1), 3, False),  # a stray pixel
        (draw(draw(blank(), 0, 0), 0, 24), 2, True),  # squares at the border
    ]
    holed = draw(draw(blank(), 0, 0), 20, 20)
    holed[0, 0, 23, 23] = -1.0  # an 8x8 box with 63 pixels
    cases.append((holed, 2, False))
    faint = -0.2 * torch.ones(1, 1, 32, 32)
    faint[0, 0, 2:10, 2:10] = 0.3
    faint[0, 0, 20:28, 11:19] = 0.01  # binarised at 0, the midpoint of [-1, 1]
    cases.append((faint, 2, True))
    images = torch.cat([c[0] for c in cases])
    return images, [c[1] for c in cases], [c[2] for c in cases]


def test_rectangle_counts_on_hand_built_images(two):
    images, counts, correct = hand_built()
    got_counts, clean = rectangle_counts(images)
    assert got_counts.tolist() == counts
    assert two.is_correct(images).tolist() == correct
    assert (clean & (got_counts == 2)).tolist() == correct
    metrics = rectangle_metrics(images, two)
    assert metrics["correct_fraction"] == pytest.approx(sum(correct) / len(correct))
    assert metrics["component_count_fractions"]["2"] == pytest.approx(counts.count(2) / len(counts))
    assert metrics["count_fraction"] == pytest.approx(counts.count(2) / len(counts))
    assert metrics["component_count_fractions"]["0"] == pytest.approx(1 / len(counts))


def test_nearest_training_distances_against_a_naive_loop(two):
    g = torch.Generator().manual_seed(0)
    samples = torch.cat([two.sample(20, g), rectangle_null_samples("null-noise", two, 20), hand_built()[0]])
    training = two.images[:30]
    got = nearest_training_distances(samples, training, chunk=7)
    a, b = training[:, 0] > 0, samples[:, 0] > 0
    naive = [min(int((a[i] != b[j]).sum()) for j in range(b.shape[0])) for i in range(a.shape[0])]
    assert got.tolist() == naive


def test_neighbour_check_threshold(two):
    corners = two.corners[:100].clone()
    # one square moved by one pixel differs in 16 pixels, by two in 32; moves that stay valid
    step = torch.where(corners[:, 0, 0] < 24, 1, -1)
    moved1, moved2 = corners.clone(), corners.clone()
    moved1[:, 0, 0] += step
    moved2[:, 0, 0] += 2 * step
    keep = (moved2[:, 0] - moved2[:, 1]).abs().max(1).values >= 9
    keep &= (moved2 >= 0).all(dim=(1, 2)) & (moved2 <= 24).all(dim=(1, 2))
    subset = RectangleImages(num_images=2)
    subset.images = two.images[:100][keep]  # score against exactly these training images
    one, two_px = render_rectangles(moved1[keep]), render_rectangles(moved2[keep])
    m1 = rectangle_metrics(one, subset, train_check=1000)
    m2 = rectangle_metrics(two_px, subset, train_check=1000)
    assert m1["train_checked"] == int(keep.sum()) > 50
    assert m1["neighbour_fraction"] == 1.0 and m1["exact_copy_fraction"] == 0.0 and m1["nearest_distance"] == 16
    assert m2["neighbour_fraction"] < 1.0 and m2["nearest_distance"] > 16
    assert rectangle_metrics(subset.images, subset, train_check=1000)["exact_copy_fraction"] == 1.0


def test_null_rows(two):
    rows = {r["method"]: r for r in null_records("two-rectangles", 500)}
    assert set(rows) == set(RECTANGLE_NULL_GENERATORS)
    assert rows["null-noise"]["correct_fraction"] == 0.0 and rows["null-noise"]["neighbour_fraction"] == 0.0
    assert rows["null-combinations"]["correct_fraction"] == 0.0
    assert rows["null-combinations"]["nearest_distance"] >= 64  # a whole square added or removed
    assert 0.3 < rows["null-random-squares"]["correct_fraction"] < 0.95  # overlapping/touching squares fail


@pytest.mark.parametrize(
    "samples, name",
    [
        (torch.zeros(2, 1, 32, 31), "samples"),
        (torch.zeros(2, 3, 32, 32), "samples"),
        (torch.zeros(0, 1, 32, 32), "samples"),
        (torch.zeros(2, 1, 32, 32, dtype=torch.int64), "samples"),
        (torch.full((2, 1, 32, 32), float("nan")), "samples"),
    ],
)
def test_metric_bad_samples(samples, name, two):
    with pytest.raises(ValueError, match=name):
        rectangle_metrics(samples, two)


def test_metric_bad_arguments(two):
    with pytest.raises(ValueError, match="dataset"):
        rectangle_metrics(blank(2), "two-rectangles")
    with pytest.raises(ValueError, match="train_check"):
        rectangle_metrics(blank(2), two, train_check=0)
    with pytest.raises(ValueError, match="neighbour_threshold"):
        rectangle_metrics(blank(2), two, neighbour_threshold=-1)
    with pytest.raises(ValueError, match="training"):
        nearest_training_distances(blank(2), torch.zeros(2, 32, 32))


# -------------------------------------------------------------------------------------------
# SC and PCR


def test_correct_replaced_on_a_hand_built_batch():
    a, b, c, d = (torch.full((1, 1, 2, 2), float(v)) for v in (1, 2, 3, 4))
    fake = torch.cat([a, b, c, d])
    correct = torch.tensor([True, False, True, False])
    seen = set()
    for seed in range(20):
        out = correct_replaced(fake, correct, generator=torch.Generator().manual_seed(seed))
        assert out[1, 0, 0, 0] == 2 and out[3, 0, 0, 0] == 4  # incorrect images are kept
        assert {out[0, 0, 0, 0].item(), out[2, 0, 0, 0].item()} <= {2.0, 4.0}  # correct ones replaced by them
        seen |= {out[0, 0, 0, 0].item(), out[2, 0, 0, 0].item()}
    assert seen == {2.0, 4.0} and fake[0, 0, 0, 0] == 1  # both drawn; the input is not modified
    # all correct: the fallback negatives take their places
    fallback = torch.full((3, 1, 2, 2), -7.0)
    out = correct_replaced(fake, torch.ones(4, dtype=torch.bool), fallback)
    assert (out == -7).all()
    assert torch.equal(correct_replaced(fake, torch.zeros(4, dtype=torch.bool)), fake)
    with pytest.raises(ValueError, match="fallback"):
        correct_replaced(fake, torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="correct"):
        correct_replaced(fake, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="correct"):
        correct_replaced(fake, torch.ones(4))
    with pytest.raises(ValueError, match="fake"):
        correct_replaced(torch.zeros(0, 2), torch.ones(0, dtype=torch.bool))


def _rows_in(rows: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    return (rows[:, None] == pool[None]).flatten(2).all(2).any(1)


def test_negative_batches_sc_pcr_and_both():
    ds = RectangleImages(num_images=20, seed=1)
    noise = rectangle_null_samples("null-noise", ds, 4)
    fake = torch.cat([ds.images[:4], noise])  # 4 correct, 4 incorrect
    g = torch.Generator().manual_seed(0)
    sc = NegativeBatch(ds, sample_correction=True)
    out = sc(fake, g)
    assert not ds.is_correct(out).any() and torch.equal(out[4:], noise) and _rows_in(out[:4], noise).all()
    assert sc.stats["correct_replaced"] == 4 and sc.stats["fallback_batches"] == 0
    # all correct: combination images (incorrect by construction) take their places
    out = sc(ds.images[:8], g)
    assert _rows_in(out, ds.combinations).all() and sc.stats["fallback_batches"] == 1
    pcr = NegativeBatch(ds, combination_regularization=True)  # eq. 13: half the negatives
    out = pcr(fake, g)
    is_combination = _rows_in(out, ds.combinations)
    unchanged = (out == fake).flatten(1).all(1)
    assert int(is_combination.sum()) == 4 and (is_combination ^ unchanged).all()
    quarter = NegativeBatch(ds, combination_regularization=True, combination_ratio=0.25)
    assert int(_rows_in(quarter(fake, g), ds.combinations).sum()) == 2
    both = NegativeBatch(ds, sample_correction=True, combination_regularization=True)
    out = both(fake, g)
    assert not ds.is_correct(out).any() and int(_rows_in(out, ds.combinations).sum()) == 4
    assert _rows_in(out[~_rows_in(out, ds.combinations)], noise).all()


def test_negative_batch_bad_arguments():
    ds = RectangleImages(num_images=4)
    with pytest.raises(ValueError, match="sample_correction"):
        NegativeBatch(ds, sample_correction=1)
    with pytest.raises(ValueError, match="combination_regularization"):
        NegativeBatch(ds, combination_regularization="yes")
    with pytest.raises(ValueError, match="sample_correction"):
        NegativeBatch(ds)
    with pytest.raises(ValueError, match="combination_ratio"):
        NegativeBatch(ds, combination_regularization=True, combination_ratio=1.0)
    with pytest.raises(ValueError, match="dataset"):
        NegativeBatch(object(), sample_correction=True)
    with pytest.raises(ValueError, match="fake"):
        NegativeBatch(ds, sample_correction=True)(torch.zeros(4, 1024))


@pytest.mark.parametrize(
    "changes, name",
    [
        (dict(sample_correction=1), "sample_correction"),
        (dict(combination_regularization=True, dataset="grid25"), "combination_regularization"),
        (dict(sample_correction=True, dataset="digits"), "sample_correction"),
        (dict(combination_ratio=0.0), "combination_ratio"),
        (dict(combination_ratio=float("nan")), "combination_ratio"),
    ],
)
def test_train_config_bad_options(changes, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**{**TINY, **changes}).validate()


# -------------------------------------------------------------------------------------------
# Trainer and CLI


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_with_sc_and_pcr(method):
    trainer = Trainer(TrainConfig(method=method, sample_correction=True, combination_regularization=True, **TINY))
    trainer.train(progress=False)
    stats = trainer.negatives.stats
    n = trainer.samples_per_step
    assert stats["batches"] == 2 and stats["images"] == 2 * n and stats["combinations"] == 2 * round(n / 2)
    metrics = trainer.evaluate()
    assert metrics["num_samples"] == 64 and 0.0 <= metrics["correct_fraction"] <= 1.0


def test_trainer_applies_the_negatives_in_the_discriminator_step():
    plain = Trainer(TrainConfig(method="standard", **TINY))
    pcr = Trainer(TrainConfig(method="standard", combination_regularization=True, **TINY))
    assert plain.negatives is None
    seen = []
    original = pcr.discriminator_loss
    pcr.discriminator_loss = lambda real, fake: seen.append(fake) or original(real, fake)
    pcr.discriminator_step()
    assert int(_rows_in(seen[0], pcr.dataset.combinations).sum()) == TINY["batch_size"] // 2
    assert pcr.negatives.stats["batches"] == 1


def test_cli_smoke(tmp_path):
    out = str(tmp_path / "rect")
    args = ["--dataset", "two-rectangles", "--method", "standard", "--steps", "2", "--batch-size", "16"]
    args += ["--hidden", "4", "--eval-samples", "64", "--out", out, "--no-progress"]
    assert cli_main([*args, "--sample-correction", "--combination-regularization", "--combination-ratio", "0.25"]) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        result = json.load(f)
    (run,) = result["runs"]
    assert run["config"]["sample_correction"] and run["config"]["combination_regularization"]
    assert run["config"]["combination_ratio"] == 0.25 and 0.0 <= run["correct_fraction"] <= 1.0
    assert {r["method"] for r in result["null_rows"]} == set(RECTANGLE_NULL_GENERATORS)
    assert result["table"][0]["correct_fraction"][0] == run["correct_fraction"]
    assert os.path.exists(os.path.join(out, "samples.png"))
    with pytest.raises(SystemExit):
        cli_main([*args, "--dataset", "grid25", "--sample-correction"])
