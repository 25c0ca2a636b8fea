"""Training layer: datasets, metrics, training steps, determinism, checkpoints and the CLI.
No test depends on a GAN converging."""

import dataclasses
import json
import math
import os

import pytest
import torch

from batchgan_ext import MinibatchDiscrimination
from batchgan_ext.train import METHODS, TrainConfig, Trainer, grid25, make_dataset, mode_metrics, ring8
from batchgan_ext.train.checkpoint import load_checkpoint
from batchgan_ext.train.cli import build_parser, config_from_args
from batchgan_ext.train.cli import main as cli_main
from batchgan_ext.train.metrics import null_metrics, null_samples
from batchgan_ext.train.report import main as report_main
from batchgan_ext.train.report import replace_block
from batchgan_ext.train.results import aggregate, clears_null_rows, format_table, null_records
from batchgan_ext.train.sweep import main as sweep_main
from batchgan_ext.train.sweep import plan_runs, run_sweep, train_run
from batchgan_ext.train.trainer import PRESETS, preset_values

TINY = dict(
    steps=4,
    n_disc=2,
    batch_size=16,
    set_size=4,
    minibatch_set_size=8,
    hidden=16,
    g_layers=2,
    d_layers=2,
    eval_samples=200,
    log_every=1,
)


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
    assert m["reverse_kl"] == pytest.approx(0.0, abs=1e-12)


def test_metrics_single_mode_collapse():
    ds = ring8()
    samples = ds.means[3].repeat(50, 1)
    m = mode_metrics(samples, ds.means, ds.std)
    assert m["modes_covered"] == 1 and m["mode_counts"][3] == 50
    assert m["reverse_kl"] == pytest.approx(math.log(8))


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
    assert mode_metrics(samples, ds.means, ds.std)["reverse_kl"] == pytest.approx(float((q * (25 * q).log()).sum()))


def test_metrics_without_high_quality_samples():
    ds = ring8()
    m = mode_metrics(torch.full((10, 2), 5.0), ds.means, ds.std)
    assert m["modes_covered"] == 0 and m["high_quality_fraction"] == 0.0 and m["reverse_kl"] is None
    assert m["modes_covered_strict"] == 0


def test_strict_coverage_needs_a_fifth_of_a_fair_share():
    # 2,500 samples on grid25: a fair share is 100, so a mode counts strictly from 20 samples.
    ds = grid25()
    counts = [20] * 10 + [19] * 10 + [1] * 5
    samples = torch.cat([ds.means[k].repeat(c, 1) for k, c in enumerate(counts)])
    samples = torch.cat([samples, torch.full((2500 - samples.shape[0], 2), 9.0)])  # far from every mode
    m = mode_metrics(samples, ds.means, ds.std)
    assert m["num_samples"] == 2500 and m["modes_covered"] == 25 and m["modes_covered_strict"] == 10


def test_null_generators_score_high_on_the_veegan_rule_and_zero_strictly():
    # Why the strict rule exists: uniform noise "covers" nearly every grid mode by the VEEGAN rule.
    ds = grid25()
    nulls = null_metrics(ds.means, ds.std, 2500)
    assert nulls["null-uniform"]["modes_covered"] >= 20
    for m in nulls.values():
        assert m["modes_covered_strict"] == 0 and m["high_quality_fraction"] < 0.05


def test_null_samples_follow_their_definitions():
    ds = grid25()
    uniform = null_samples("null-uniform", ds.means, ds.std, 20000, seed=1)
    assert uniform.min() >= -4.15 and uniform.max() <= 4.15 and uniform.min() < -4.1 and uniform.max() > 4.1
    gaussian = null_samples("null-gaussian", ds.means, ds.std, 200000, seed=1)
    expected_cov = torch.cov(ds.means.double().T, correction=0) + 0.05**2 * torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(torch.cov(gaussian.T), expected_cov, atol=0.05, rtol=0.02)
    torch.testing.assert_close(gaussian.mean(0), torch.zeros(2, dtype=torch.float64), atol=0.02, rtol=0)
    assert torch.equal(uniform, null_samples("null-uniform", ds.means, ds.std, 20000, seed=1))
    with pytest.raises(ValueError, match="kind: expected one of"):
        null_samples("null-normal", ds.means, ds.std, 10)


def test_metrics_reject_non_finite_samples():
    ds = ring8()
    with pytest.raises(ValueError, match="samples: expected finite"):
        mode_metrics(torch.tensor([[float("nan"), 0.0]]), ds.means, ds.std)


# --------------------------------------------------------------------------------------------
# result tables


def _record(method, seed, strict, hq, kl, modes=25, dataset="grid25"):
    return dict(
        dataset=dataset,
        method=method,
        seed=seed,
        num_modes=25,
        num_samples=2500,
        modes_covered=modes,
        modes_covered_strict=strict,
        high_quality_fraction=hq,
        reverse_kl=kl,
        wall_seconds=10.0,
    )


def test_aggregate_gives_mean_and_standard_error_over_seeds():
    rows = aggregate([_record("bgan", 0, 24, 0.9, 0.05), _record("bgan", 1, 22, 0.8, 0.07), _record("std", 0, 1, 1, 1)])
    bgan = rows[0]
    assert bgan["runs"] == 2 and bgan["modes_covered_strict"][0] == 23
    assert bgan["modes_covered_strict"][1] == pytest.approx(1.0)  # sample std sqrt(2) / sqrt(2)
    assert bgan["high_quality_fraction"][0] == pytest.approx(0.85)
    assert rows[1]["method"] == "std" and rows[1]["modes_covered"] == (25.0, None)


def test_a_run_without_high_quality_samples_has_no_mean_reverse_kl():
    rows = aggregate([_record("gan", 0, 0, 0.0, None), _record("gan", 1, 5, 0.5, 0.1)])
    assert rows[0]["reverse_kl"] is None
    assert "-" in format_table(rows)


def test_a_row_clears_the_null_rows_only_when_it_beats_both_on_every_metric():
    nulls = null_records("grid25")
    good = aggregate([_record("bgan", 0, 25, 0.95, 0.01)])[0]
    assert clears_null_rows(good, nulls)
    many_modes_poor_quality = aggregate([_record("bgan", 0, 25, 0.02, 0.01)])[0]
    assert not clears_null_rows(many_modes_poor_quality, nulls)
    unbalanced = aggregate([_record("gan", 0, 17, 0.95, 0.7, modes=17)])[0]
    assert not clears_null_rows(unbalanced, nulls)  # uniform noise has more VEEGAN modes and a lower KL
    table = format_table([good, unbalanced], nulls)
    assert table.index("null-uniform") < table.index("bgan")
    assert "yes" in table and "no" in table and "25.0" in table


def test_readme_block_replacement():
    text = "a\n<!-- results:2d:begin -->\nold\n<!-- results:2d:end -->\nb\n"
    assert replace_block(text, "2d", "new") == "a\n<!-- results:2d:begin -->\nnew\n<!-- results:2d:end -->\nb\n"
    with pytest.raises(ValueError, match="readme: expected one"):
        replace_block("no markers", "2d", "new")


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


def test_pacgan_discriminator_sees_packs_of_the_datasets_degree():
    for dataset, packing in (("grid25", 4), ("ring8", 2)):
        trainer = Trainer(TrainConfig(method="pacgan", dataset=dataset, **TINY))
        real = trainer._real()
        assert real.shape == (16 * packing, 2)  # PacGAN draws `packing` times the batch
        assert trainer.discriminator[1].in_features == 2 * packing
        assert trainer.discriminator(real).reshape(-1).shape == (16,)
    trainer = Trainer(TrainConfig(method="pacgan", dataset="ring8", packing=3, **TINY))
    assert trainer.packing == 3 and trainer._real().shape == (48, 2)


def test_pacgan_logit_of_a_pack_is_the_inner_network_on_the_concatenated_samples():
    trainer = Trainer(TrainConfig(method="pacgan", dataset="grid25", **TINY))
    x = torch.randn(8, 2)
    expected = trainer.discriminator[1:](torch.cat([x[0:4].reshape(1, 8), x[4:8].reshape(1, 8)]))
    torch.testing.assert_close(trainer.discriminator(x), expected)


def test_minibatch_layer_is_initialised_from_the_first_batch_as_in_improved_gan():
    trainer = Trainer(TrainConfig(method="minibatch", dataset="grid25", **TINY))
    layer = next(m for m in trainer.discriminator if isinstance(m, MinibatchDiscrimination))
    assert layer.bias is not None
    # improved-gan's init pass: the features on the init batch have zero mean, so the bias is not -1 any more.
    init_batch = trainer.dataset.sample(16, torch.Generator().manual_seed(0))
    features = trainer.discriminator[:-2](init_batch)
    o = layer(features)[:, features.shape[1] :]
    torch.testing.assert_close(o.mean(0), torch.zeros(o.shape[1]), atol=1e-5, rtol=0)


def test_mixup_targets_are_the_mixing_weights():
    trainer = Trainer(TrainConfig(method="mixup", dataset="ring8", **TINY))
    seen = {}
    original = trainer.discriminator.forward

    def record(x):
        seen["x"] = x
        return original(x)

    trainer.discriminator.forward = record
    real, fake = torch.zeros(16, 2), torch.ones(16, 2)
    state = trainer.rng_mix.get_state()
    loss = trainer.discriminator_loss(real, fake)
    trainer.rng_mix.set_state(state)
    weight = trainer.loss.mixup_weights(16, trainer.rng_mix)
    assert ((weight >= 0) & (weight <= 1)).all() and weight.std() > 0
    torch.testing.assert_close(seen["x"], (1 - weight)[:, None].expand(16, 2))  # lerp(fake, real, w)
    logits = original(seen["x"]).reshape(-1)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, weight, reduction="none")
    entropy = -(weight * weight.clamp_min(1e-12).log() + (1 - weight) * (1 - weight).clamp_min(1e-12).log())
    torch.testing.assert_close(loss, (expected - entropy).mean(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["bgan", "mbgan"])
def test_batch_discriminators_give_one_logit_per_sample_and_are_equivariant_within_sets(method):
    trainer = Trainer(TrainConfig(method=method, dataset="ring8", **TINY))
    x = torch.randn(16, 2)
    out = trainer.discriminator(x).reshape(-1)
    assert out.shape == (16,)
    perm = torch.cat([torch.randperm(4) + 4 * k for k in range(4)])  # within each set of 4
    torch.testing.assert_close(trainer.discriminator(x[perm]).reshape(-1), out[perm])


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    trainer = Trainer(TrainConfig(method="standard", **dict(TINY, steps=100), lr=1e-3, lr_decay=0.25))
    assert trainer.learning_rate(0) == 1e-3 and trainer.learning_rate(75) == 1e-3
    assert trainer.learning_rate(90) == pytest.approx(1e-3 * 10 / 25)
    assert trainer.learning_rate(99) == pytest.approx(1e-3 / 25)
    no_decay = Trainer(TrainConfig(method="standard", **dict(TINY, steps=100), lr_decay=0.0))
    assert no_decay.learning_rate(99) == no_decay.config.lr


def test_sampling_uses_batch_norm_running_statistics_and_keeps_training_mode():
    trainer = Trainer(TrainConfig(method="standard", **TINY))
    trainer.train(progress=False)  # running statistics away from their initial values
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(12345))
    samples = trainer.sample(64, seed=12345)
    assert trainer.generator.training
    with torch.no_grad():
        running_statistics = trainer.generator.eval()(noise)
        batch_statistics = trainer.generator.train()(noise)  # (this updates the running statistics)
    torch.testing.assert_close(samples, running_statistics)
    assert not torch.allclose(samples, batch_statistics)


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
        (dict(lr_decay=1.5), "lr_decay"),
        (dict(packing=-1), "packing"),
        (dict(mixup_alpha=0.0), "mixup_alpha"),
        (dict(lr=float("nan")), "lr"),
        (dict(beta1=1.0), "beta1"),
        (dict(g_layers=True), "g_layers"),
        (dict(method="mbstd", batch_size=18, mbstd_group_size=4), "mbstd_group_size"),
        (dict(method="minibatch", batch_size=96, minibatch_set_size=64), "minibatch_set_size"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs).validate()


# --------------------------------------------------------------------------------------------
# CLI


def tiny_cli_args(out, *extra, method="mbgan", steps=3):
    """Command-line arguments of a run on ring8 as small as TINY's."""
    tiny = "--dataset ring8 --n-disc 2 --hidden 16 --g-layers 2 --d-layers 2 --batch-size 16 --set-size 4"
    tiny += " --minibatch-set-size 8"
    tiny += " --eval-samples 100"
    return [*tiny.split(), "--method", method, "--steps", str(steps), "--no-progress", "--out", str(out), *extra]


def test_cli_smoke(tmp_path, capsys):
    out = os.path.join(tmp_path, "run")
    code = cli_main(tiny_cli_args(out, "--checkpoint-every", "2", method="standard,mbgan"))
    assert code == 0
    for name in ("metrics.json", "samples.png", "losses.png", "standard.pt", "mbgan.pt"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert [r["method"] for r in metrics["runs"]] == ["standard", "mbgan"]
    assert [r["method"] for r in metrics["null_rows"]] == ["null-uniform", "null-gaussian"]
    assert metrics["null_rows"][0]["num_samples"] == 100 == metrics["runs"][1]["num_samples"]
    mbgan = metrics["runs"][1]
    assert mbgan["num_modes"] == 8 and {"modes_covered_strict", "reverse_kl"} <= set(mbgan)
    printed = capsys.readouterr().out
    assert "modes (strict)" in printed and "null-uniform" in printed and "mbgan" in printed
    # Resuming a finished run trains no further and reproduces its metrics.
    assert cli_main(tiny_cli_args(out, "--resume")) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["runs"][0]["mode_counts"] == mbgan["mode_counts"]


def test_cli_seeds_train_each_method_per_seed(tmp_path, capsys):
    out = os.path.join(tmp_path, "run")
    assert cli_main(tiny_cli_args(out, "--seeds", "2", "--seed", "5", method="standard", steps=2)) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert [r["seed"] for r in metrics["runs"]] == [5, 6]
    assert metrics["table"][0]["runs"] == 2 and len(metrics["table"][0]["modes_covered_strict"]) == 2
    assert " ± " in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# sweeps and reports


def _tiny_runs(out, methods=("standard", "bgan"), seeds=(0,), gammas=None):
    overrides = dict(TINY, steps=6, eval_samples=100)
    return plan_runs("demo", str(out), ["ring8"], list(methods), list(seeds), gammas, overrides)


def test_sweep_plans_seed_major_and_writes_one_file_per_run(tmp_path):
    runs = _tiny_runs(tmp_path, seeds=(0, 1))
    assert [r.label for r in runs] == [
        "ring8/standard/seed0",
        "ring8/bgan/seed0",
        "ring8/standard/seed1",
        "ring8/bgan/seed1",
    ]
    assert run_sweep(runs[:2], jobs=1, progress=False) == ["ring8/standard/seed0", "ring8/bgan/seed0"]
    with open(runs[0].result_path) as f:
        record = json.load(f)
    assert record["method"] == "standard" and record["seed"] == 0 and record["config"]["steps"] == 6
    assert {"modes_covered_strict", "reverse_kl", "history", "wall_seconds"} <= set(record)
    assert record["torch_version"] == torch.__version__
    # A second sweep skips what exists.
    assert run_sweep(runs, jobs=1, progress=False) == ["ring8/standard/seed1", "ring8/bgan/seed1"]
    assert run_sweep(runs, jobs=1, progress=False) == []


def test_sweep_first_seed_trains_seeds_kept_apart_from_the_table(tmp_path, capsys):
    out = tmp_path / "selection"
    args = ["--out", str(out), "--datasets", "ring8", "--methods", "standard", "--steps", "2", "--jobs", "1"]
    assert sweep_main([*args, "--seeds", "2", "--first-seed", "10", "--no-progress"]) == 0
    assert sorted(os.listdir(out / "ring8" / "standard")) == ["seed10.json", "seed11.json"]
    with open(out / "ring8" / "standard" / "seed11.json") as f:
        assert json.load(f)["config"]["seed"] == 11
    with pytest.raises(SystemExit):
        sweep_main([*args, "--first-seed", "-1"])
    assert "--first-seed: expected an integer >= 0" in capsys.readouterr().err


def test_sweep_n_disc_overrides_the_preset_for_every_run(tmp_path, capsys):
    out = tmp_path / "ndisc"
    args = ["--out", str(out), "--datasets", "ring8", "--methods", "standard,bgan", "--steps", "2", "--jobs", "1"]
    assert sweep_main([*args, "--seeds", "1", "--n-disc", "3", "--no-progress"]) == 0
    for method in ("standard", "bgan"):
        with open(out / "ring8" / method / "seed0.json") as f:
            assert json.load(f)["config"]["n_disc"] == 3
    for bad in ("0", "-2"):
        with pytest.raises(SystemExit):
            sweep_main([*args, "--n-disc", bad])
        # TrainConfig.validate, which every planned run goes through, names the field.
        assert f"n_disc: expected a positive integer, got {bad}" in capsys.readouterr().err


def test_sweep_refuses_results_of_another_configuration(tmp_path):
    run_sweep(_tiny_runs(tmp_path, methods=("standard",)), jobs=1, progress=False)
    other = plan_runs("demo", str(tmp_path), ["ring8"], ["standard"], [0], None, dict(TINY, steps=7, eval_samples=100))
    with pytest.raises(ValueError, match="another configuration"):
        run_sweep(other, jobs=1, progress=False)


def test_presets_give_grid25_its_n_disc_and_steps_in_the_sweep_the_cli_and_the_demo(tmp_path):
    assert preset_values("results", "grid25") == dict(PRESETS["results"], n_disc=2, steps=40000, dataset="grid25")
    assert preset_values("demo", "grid25") == dict(PRESETS["demo"], n_disc=2, dataset="grid25")
    assert preset_values("results", "ring8") == dict(PRESETS["results"], dataset="ring8")
    assert preset_values("paper", "grid25") == dict(PRESETS["paper"], dataset="grid25")
    for preset in ("image-results", "image-demo"):
        assert preset_values(preset, "stacked-digits")["n_disc"] == 2
    grid, ring = plan_runs("results", str(tmp_path), ["grid25", "ring8"], ["standard"], [0])
    assert (grid.config.n_disc, ring.config.n_disc) == (2, 1)
    assert (grid.config.steps, ring.config.steps) == (40000, 20000)
    (demo,) = plan_runs("demo", str(tmp_path), ["grid25"], ["bgan"], [0])
    assert demo.config.n_disc == 2 and demo.config.steps == PRESETS["demo"]["steps"]
    # An explicit value still wins over the dataset's.
    (override,) = plan_runs("results", str(tmp_path), ["grid25"], ["standard"], [0], None, {"n_disc": 3})
    assert override.config.n_disc == 3
    parser = build_parser()
    cli = config_from_args(parser.parse_args(["--dataset", "grid25", "--preset", "results", "--out", str(tmp_path)]))
    assert cli == dataclasses.replace(grid.config, method=cli.method)
    with pytest.raises(ValueError, match="preset: expected one of"):
        preset_values("nope", "grid25")


def test_an_interrupted_run_resumes_from_its_checkpoint_and_matches_the_uninterrupted_one(tmp_path):
    (straight,) = _tiny_runs(tmp_path / "a", methods=("bgan",))
    expected = train_run(straight)
    (run,) = _tiny_runs(tmp_path / "b", methods=("bgan",))
    trainer = Trainer(run.config)
    trainer.train(steps=4, progress=False)
    trainer.save(run.checkpoint_path)  # what a sweep killed after step 4 leaves behind
    steps = []
    resumed = train_run(run, report=steps.append)
    assert sum(steps) == 6 and not os.path.exists(run.checkpoint_path)
    assert resumed["mode_counts"] == expected["mode_counts"]
    assert resumed["history"]["loss_d"] == expected["history"]["loss_d"]


def test_parallel_sweep_equals_the_serial_one(tmp_path):
    serial = _tiny_runs(tmp_path / "serial")
    parallel = _tiny_runs(tmp_path / "parallel")
    run_sweep(serial, jobs=1, progress=False)
    assert sorted(run_sweep(parallel, jobs=2, progress=False)) == sorted(r.label for r in parallel)
    for a, b in zip(serial, parallel):
        with open(a.result_path) as fa, open(b.result_path) as fb:
            ra, rb = json.load(fa), json.load(fb)
        assert ra["mode_counts"] == rb["mode_counts"] and ra["history"] == rb["history"]


def test_report_prints_the_table_with_null_rows_and_updates_the_readme(tmp_path, capsys):
    out = tmp_path / "2d"
    run_sweep(_tiny_runs(out, seeds=(0, 1)), jobs=1, progress=False)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:2d:begin -->\nstale\n<!-- results:2d:end -->\nrest\n")
    assert report_main([str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("rest\n")
    assert "| ring8 | null-uniform |" in text and "| ring8 | bgan | 2 |" in text
    assert "batchgan-report" in text
    assert "null-gaussian" in capsys.readouterr().out


def test_report_shows_one_row_per_gamma(tmp_path, capsys):
    out = tmp_path / "gamma"
    run_sweep(_tiny_runs(out, methods=("bgan",), gammas=[0.0, 0.5]), jobs=1, progress=False)
    assert report_main([str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [line.split() for line in printed.splitlines() if line.startswith("ring8") and "bgan" in line]
    assert "gamma" in printed and sorted(row[2] for row in rows) == ["0.0", "0.5"]


def test_report_refuses_runs_with_different_budgets(tmp_path):
    run_sweep(_tiny_runs(tmp_path, methods=("standard",)), jobs=1, progress=False)
    other = plan_runs("demo", str(tmp_path), ["ring8"], ["bgan"], [0], None, dict(TINY, steps=5, eval_samples=100))
    run_sweep(other, jobs=1, progress=False)
    with pytest.raises(SystemExit):
        report_main([str(tmp_path)])


def test_cli_rejects_unknown_method(tmp_path):
    with pytest.raises(SystemExit):
        cli_main(["--method", "wgan", "--out", str(tmp_path)])


def test_demo_runs_every_requested_method_and_prints_the_null_rows(tmp_path, capsys):
    from batchgan_ext.train.demo import main as demo_main

    out = tmp_path / "demo"
    args = ["--out", str(out), "--steps", "3", "--methods", "standard,pacgan", "--datasets", "ring8"]
    assert demo_main([*args, "--jobs", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "null-uniform" in printed and "pacgan" in printed and "not the results" in printed
    for name in ("samples.png", "losses.png"):
        assert os.path.getsize(out / "ring8" / name) > 0
    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert [r["method"] for r in summary["runs"]] == ["standard", "pacgan"]


def test_config_matches_files_written_before_newer_fields():
    """Result files and checkpoints written before a field existed still match a config that keeps that
    field's default (sweeps resume over them); a changed value or an unknown field does not."""
    from batchgan_ext.train.trainer import config_matches

    config = TrainConfig(dataset="ring8", method="mbgan", steps=7)
    stored = dataclasses.asdict(config)
    older = {k: v for k, v in stored.items() if k not in ("num_discriminators", "feature_matching")}
    assert config_matches(stored, config) and config_matches(older, config)
    assert not config_matches({**older, "steps": 8}, config)
    assert not config_matches(older, dataclasses.replace(config, feature_matching=True))
    assert not config_matches({**stored, "unknown": 1}, config)
    assert not config_matches(None, config)
