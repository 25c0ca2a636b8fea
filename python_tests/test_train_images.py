"""The training layer on the digit images: the DCGAN/SN-GAN networks, every method through the
Trainer, the CLI's outputs and the sweep/report tables with the image metrics and null rows."""

import json
import os

import pytest
import torch
from torch import nn

import batchgan_ext as bg

pytest.importorskip("sklearn", reason="the digit images are scikit-learn's digits (the train extra)")
pytest.importorskip("scipy.linalg", reason="the Fréchet distance needs scipy (the train extra)")

from batchgan_ext.train import METHODS, GANLoss, TrainConfig, Trainer
from batchgan_ext.train.cli import main as cli_main
from batchgan_ext.train.image_networks import make_image_discriminator, make_image_generator
from batchgan_ext.train.report import main as report_main
from batchgan_ext.train.results import format_table, null_records
from batchgan_ext.train.sweep import plan_runs, run_sweep

TINY_IMAGES = dict(
    dataset="stacked-digits", steps=2, batch_size=16, set_size=4, hidden=4, latent_dim=8, eval_samples=200,
    minibatch_set_size=8, log_every=1,
)  # fmt: skip


def test_image_networks_shapes_and_sngan_layout():
    G = make_image_generator(latent_dim=8, channels=3, width=4)
    x = G(torch.randn(5, 8))
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1
    D = make_image_discriminator(channels=3, width=4)
    assert D(x).shape == (5, 1)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 4, 8, 8, 16, 16, 32]  # SN-GAN's w, w, 2w, 2w, 4w, 4w, 8w
    assert all(
        nn.utils.parametrize.is_parametrized(m, "weight") for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    )
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_on_stacked_digits(method, digit_classifier_cache):
    trainer = Trainer(TrainConfig(method=method, **TINY_IMAGES))
    if method in ("bgan", "mbgan"):
        assert any(isinstance(m, bg.EquivariantConv2d) for m in trainer.discriminator.modules())
        assert not any(isinstance(m, nn.Conv2d) for m in trainer.discriminator.modules())
    if method == "pacgan":
        assert trainer.packing == 2 and trainer._real().shape == (32, 3, 32, 32)
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    trainer.train(progress=False)
    assert trainer.step == 2 and all(len(v) == 2 for v in trainer.history.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.generator.parameters()))
    metrics = trainer.evaluate()
    assert metrics["num_modes"] == 1000 and metrics["num_samples"] == 200
    assert 1 <= metrics["modes_covered"] <= 200 and metrics["reverse_kl"] >= 0 and metrics["frechet_distance"] > 0


def test_image_runs_are_determined_by_the_config():
    config = TrainConfig(method="mbgan", **TINY_IMAGES)
    a, b = Trainer(config), Trainer(config)
    a.train(progress=False)
    b.train(progress=False)
    for p, q in zip(a.generator.state_dict().values(), b.generator.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_the_trainers_discriminator_is_what_ganloss_builds():
    trainer = Trainer(TrainConfig(method="minibatch", **TINY_IMAGES))
    assert isinstance(trainer.loss, GANLoss) and trainer.loss.minibatch_set_size == 8
    (layer,) = [m for m in trainer.discriminator.modules() if isinstance(m, bg.MinibatchDiscrimination)]
    assert layer.set_size == 8


def test_cli_on_images_writes_metrics_with_null_rows_and_plots(tmp_path, capsys, digit_classifier_cache):
    out = tmp_path / "run"
    args = ["--dataset", "stacked-digits", "--method", "standard,mbgan", "--steps", "2", "--batch-size", "16"]
    args += ["--set-size", "4", "--hidden", "4", "--eval-samples", "150", "--out", str(out), "--no-progress"]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "modes covered" in printed and "classifier FD" in printed and "null-blend" in printed
    result = json.loads((out / "metrics.json").read_text())
    assert [r["method"] for r in result["runs"]] == ["standard", "mbgan"]
    assert {n["method"] for n in result["null_rows"]} == {"null-noise", "null-blend"}
    assert all(n["num_samples"] == 150 for n in result["null_rows"])
    assert result["runs"][0]["config"]["latent_dim"] == 64  # the image-demo preset, taken by default
    assert (out / "samples.png").stat().st_size > 0 and (out / "losses.png").stat().st_size > 0


def test_null_rows_of_an_image_dataset_are_scored_like_the_runs(digit_classifier_cache):
    rows = null_records("stacked-digits", 300)
    by_name = {r["method"]: r for r in rows}
    assert set(by_name) == {"null-noise", "null-blend"}
    # Blended digits cover more modes than noise and sit closer to the data.
    assert by_name["null-blend"]["modes_covered"] > by_name["null-noise"]["modes_covered"]
    assert by_name["null-blend"]["frechet_distance"] < by_name["null-noise"]["frechet_distance"]


def test_one_table_holds_2d_or_image_datasets_not_both():
    image = dict(dataset="digits", method="x", runs=1, modes_covered=1, reverse_kl=0.1, frechet_distance=1.0)
    planar = dict(dataset="ring8", method="y", runs=1, modes_covered=1, modes_covered_strict=1)
    with pytest.raises(ValueError, match="one table holds 2D or image datasets, not both"):
        format_table([image, planar])


def test_image_sweep_and_report(tmp_path, capsys, digit_classifier_cache):
    overrides = {k: v for k, v in TINY_IMAGES.items() if k != "dataset"}
    runs = plan_runs("image-demo", str(tmp_path), ["digits"], ["standard", "bgan"], [0, 1], None, overrides)
    assert len(run_sweep(runs, jobs=1, progress=False)) == 4
    assert sorted(os.listdir(tmp_path / "digits")) == ["bgan", "standard"]
    report_main([str(tmp_path)])
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert any(line.split()[:3] == ["digits", "bgan", "2"] for line in lines if line.strip())
    assert any(line.split()[:2] == ["digits", "null-noise"] for line in lines if line.strip())
    assert "DCGAN generator and SN-GAN discriminator of base width 4" in table
