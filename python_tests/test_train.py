"""Training layer: datasets, metrics, training steps, determinism, checkpoints and the CLI.
No test depends on a GAN converging."""

import dataclasses
import json
import math
import os

import pytest
import torch

from batchgan_ext.train import METHODS, TrainConfig, Trainer, grid25, make_dataset, mode_metrics, ring8
from batchgan_ext.train.checkpoint import load_checkpoint
from batchgan_ext.train.cli import main as cli_main

TINY = dict(steps=4, n_disc=2, batch_size=16, set_size=4, hidden=16, layers=2, eval_samples=200, log_every=1)


# --------------------------------------------------------------------------------------------
# datasets


def test_ring8_has_eight_distinct_modes_on_the_unit_circle():
    ds = ring8()
    assert ds.num_modes == 8 and ds.std == 0.01
    torch.testing.assert_close(ds.means.norm(dim=1), torch.ones(8))
    angles = torch.atan2(ds.means[:, 1], ds.means[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles.sort().values, torch.arange(8) * (2 * math.pi / 8), atol=1e-6, rtol=0)
    assert torch.cdist(ds.means, ds.means).add(torch.eye(8)).min() > 0.7


def test_grid25_means_and_sample_spread():
    ds = grid25()
    assert ds.num_modes == 25 and ds.std == 0.05
    assert set(ds.means[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert len({tuple(m) for m in ds.means.tolist()}) == 25
    samples = ds.sample(20000, torch.Generator().manual_seed(0))
    nearest = torch.cdist(samples, ds.means).argmin(dim=1)
    offsets = samples - ds.means[nearest]
    assert abs(offsets.std().item() - 0.05) < 0.003
    counts = torch.bincount(nearest, minlength=25).float()
    assert counts.min() > 0.8 * 20000 / 25  # roughly uniform over modes


def test_unknown_dataset_is_an_error():
    with pytest.raises(ValueError, match="dataset: expected one of"):
        make_dataset("swissroll")


# --------------------------------------------------------------------------------------------
# metrics on sample sets with known answers


def test_metrics_all_modes_evenly_covered():
    ds = grid25()
    samples = ds.means.repeat(100, 1)
    m = mode_metrics(samples, ds.means, ds.std)
    assert m["modes_covered"] == 25 and m["high_quality_fraction"] == 1.0
    assert m["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_metrics_single_mode_collapse():
    ds = ring8()
    samples = ds.means[3].repeat(50, 1) + 0.02 * torch.randn(50, 2)  # within 3 std = 0.03? not all
    samples = ds.means[3].repeat(50, 1)
    m = mode_metrics(samples, ds.means, ds.std)
    assert m["modes_covered"] == 1 and m["mode_counts"][3] == 50
    assert m["kl_to_uniform"] == pytest.approx(math.log(8))


def test_metrics_quality_threshold_is_three_std():
    ds = grid25()
    inside = ds.means[:4] + torch.tensor([2.9 * 0.05, 0.0])
    outside = ds.means[4:8] + torch.tensor([0.0, 3.1 * 0.05])
    m = mode_metrics(torch.cat([inside, outside]), ds.means, ds.std)
    assert m["high_quality_fraction"] == 0.5
    assert m["modes_covered"] == 4  # samples of low quality cover nothing
    # Two modes with 3:1 high-quality samples: KL(q || U_25) = sum q log(25 q).
    samples = torch.cat([ds.means[0].repeat(3, 1), ds.means[1].repeat(1, 1)])
    q = torch.tensor([0.75, 0.25], dtype=torch.float64)
    assert mode_metrics(samples, ds.means, ds.std)["kl_to_uniform"] == pytest.approx(float((q * (25 * q).log()).sum()))


def test_metrics_without_high_quality_samples():
    ds = ring8()
    m = mode_metrics(torch.full((10, 2), 5.0), ds.means, ds.std)
    assert m["modes_covered"] == 0 and m["high_quality_fraction"] == 0.0 and m["kl_to_uniform"] is None


# --------------------------------------------------------------------------------------------
# training steps


@pytest.mark.parametrize("method", METHODS)
def test_discriminator_loss_decreases_on_a_fixed_batch(method):
    trainer = Trainer(TrainConfig(method=method, dataset="ring8", **TINY))
    real = trainer._real()
    with torch.no_grad():
        fake = trainer.generator(trainer._noise(real.shape[0]))

    def loss():
        # Fixed mixing draws too: the same generator state for each evaluation.
        trainer.rng_mix.manual_seed(7)
        return trainer.discriminator_loss(real, fake)

    first = loss().item()
    for _ in range(30):
        trainer.opt_d.zero_grad()
        loss().backward()
        trainer.opt_d.step()
    assert loss().item() < first


@pytest.mark.parametrize("method", METHODS)
def test_generator_gets_gradients(method):
    trainer = Trainer(TrainConfig(method=method, dataset="grid25", **TINY))
    real = trainer._real()
    fake = trainer.generator(trainer._noise(real.shape[0]))
    trainer.generator_loss(real, fake).backward()
    grads = [p.grad for p in trainer.generator.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_mixed_methods_route_generator_gradients_through_mix(monkeypatch):
    # The BGAN generator loss sees the fake samples only through torch.ops.batchgan.mix.
    import batchgan_ext.nn.mixing as mixing_module

    calls = []
    real_mix = torch.ops.batchgan.mix

    def counting_mix(*args):
        calls.append(args[1].requires_grad)
        return real_mix(*args)

    monkeypatch.setattr(mixing_module.torch.ops.batchgan, "mix", counting_mix, raising=False)
    trainer = Trainer(TrainConfig(method="bgan", dataset="ring8", **TINY))
    real = trainer._real()
    fake = trainer.generator(trainer._noise(real.shape[0]))
    trainer.generator_loss(real, fake).backward()
    assert calls == [True]


@pytest.mark.parametrize("method", ["standard", "mbgan"])
def test_runs_are_determined_by_the_config(method):
    config = TrainConfig(method=method, dataset="grid25", seed=3, **TINY)
    a, b = Trainer(config), Trainer(config)
    a.train(progress=False)
    b.train(progress=False)
    for pa, pb in zip(a.generator.parameters(), b.generator.parameters()):
        assert torch.equal(pa, pb)
    c = Trainer(dataclasses.replace(config, seed=4))
    c.train(progress=False)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.generator.parameters(), c.generator.parameters()))


@pytest.mark.parametrize("method", ["minibatch", "bgan"])
def test_checkpoint_resume_reproduces_the_uninterrupted_run(tmp_path, method):
    config = TrainConfig(method=method, dataset="ring8", **dict(TINY, steps=6))
    straight = Trainer(config)
    straight.train(progress=False)

    first = Trainer(config)
    first.train(steps=3, progress=False)
    path = os.path.join(tmp_path, "ckpt.pt")
    first.save(path)
    resumed = Trainer.from_checkpoint(path)
    assert resumed.step == 3
    resumed.train(progress=False)
    assert resumed.step == 6
    for name in ("generator", "discriminator"):
        for pa, pb in zip(getattr(straight, name).parameters(), getattr(resumed, name).parameters()):
            assert torch.equal(pa, pb)
    assert straight.history["loss_d"] == resumed.history["loss_d"]


def test_checkpoint_from_another_config_is_rejected(tmp_path):
    a = Trainer(TrainConfig(method="standard", **TINY))
    path = os.path.join(tmp_path, "a.pt")
    a.save(path)
    b = Trainer(TrainConfig(method="standard", **dict(TINY, hidden=8)))
    with pytest.raises(ValueError, match="different configuration"):
        b.load_state_dict(load_checkpoint(path))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="wgan"), "method: expected one of"),
        (dict(method="bgan", batch_size=30, set_size=4), "set_size"),
        (dict(gamma=0.8), "gamma"),
        (dict(steps=0), "steps"),
        (dict(log_every=0), "log_every"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs).validate()


# --------------------------------------------------------------------------------------------
# CLI


def tiny_cli_args(out, *extra, method="mbgan", steps=3):
    """Command-line arguments of a run on ring8 as small as TINY's (the demo preset's n_disc, set explicitly)."""
    tiny = "--dataset ring8 --n-disc 2 --hidden 16 --layers 2 --batch-size 16 --set-size 4 --eval-samples 100"
    return [*tiny.split(), "--method", method, "--steps", str(steps), "--no-progress", "--out", str(out), *extra]


def test_cli_smoke(tmp_path, capsys):
    out = os.path.join(tmp_path, "run")
    code = cli_main(tiny_cli_args(out, "--checkpoint-every", "2", method="standard,mbgan"))
    assert code == 0
    for name in ("metrics.json", "samples.png", "losses.png", "standard.pt", "mbgan.pt"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert set(metrics) == {"standard", "mbgan"}
    assert metrics["mbgan"]["num_modes"] == 8 and metrics["mbgan"]["num_samples"] == 100
    printed = capsys.readouterr().out
    assert "modes covered" in printed and "mbgan" in printed
    # Resuming a finished run trains no further and reproduces its metrics.
    assert cli_main(tiny_cli_args(out, "--resume")) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["mbgan"]["modes_covered"] == metrics["mbgan"]["modes_covered"]


def test_cli_rejects_unknown_method(tmp_path):
    with pytest.raises(SystemExit):
        cli_main(["--method", "wgan", "--out", str(tmp_path)])
