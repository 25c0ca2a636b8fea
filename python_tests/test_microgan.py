"""microGAN (batchgan_ext/train/microgan.py): eq. 2's losses, the alpha schedules of eq. 3, the K
independent discriminators, section 4's Intra FID, and the trainer / CLI with method "microgan"."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from batchgan_ext.train import GANLoss, TrainConfig, Trainer
from batchgan_ext.train import microgan as mg
from batchgan_ext.train.image_metrics import frechet_distance
from batchgan_ext.train.image_networks import make_image_discriminator


def vector_discriminator():
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))


def linear_pair(weights, biases):
    """K=2 discriminators D_k(x) = w_k x + b_k on 1-D samples, with fixed weights."""
    D = mg.MicroDiscriminators(nn.Linear(1, 1), 2)
    with torch.no_grad():
        for d, w, b in zip(D.discriminators, weights, biases):
            d.weight.fill_(w)
            d.bias.fill_(b)
    return D


# --------------------------------------------------------------------------------------------
# eq. 2


def test_eq2_against_a_hand_computed_case():
    D = linear_pair([1.0, -1.0], [0.0, 0.5])
    real = torch.tensor([[0.0], [1.0], [2.0], [-1.0]])
    fake = torch.tensor([[1.0], [0.0], [-2.0], [3.0]])
    alpha = 0.5

    def log_d(logit):  # log D = log sigmoid(l)
        return -math.log1p(math.exp(-logit))

    def log_1md(logit):  # log(1 - D) = log sigmoid(-l)
        return -math.log1p(math.exp(logit))

    d1 = lambda x: x  # noqa: E731
    d2 = lambda x: -x + 0.5  # noqa: E731
    # D_1: real 0, 1; own fakes 1, 0; the others' fakes -2, 3 (as real, weight alpha).
    v1 = (log_d(d1(0)) + log_d(d1(1))) / 2 + (log_1md(d1(1)) + log_1md(d1(0))) / 2
    v1 += alpha * (log_d(d1(-2)) + log_d(d1(3))) / 2
    # D_2: real 2, -1; own fakes -2, 3; the others' fakes 1, 0.
    v2 = (log_d(d2(2)) + log_d(d2(-1))) / 2 + (log_1md(d2(-2)) + log_1md(d2(3))) / 2
    v2 += alpha * (log_d(d2(1)) + log_d(d2(0))) / 2
    g1 = (log_1md(d1(1)) + log_1md(d1(0))) / 2 + alpha * (log_d(d1(-2)) + log_d(d1(3))) / 2
    g2 = (log_1md(d2(-2)) + log_1md(d2(3))) / 2 + alpha * (log_d(d2(1)) + log_d(d2(0))) / 2
    assert mg.discriminator_loss(D, real, fake, alpha).item() == pytest.approx(-(v1 + v2), rel=1e-6)
    assert mg.generator_loss(D, fake, alpha).item() == pytest.approx(g1 + g2, rel=1e-6)
    # The same through the user API, with a static alpha.
    gan = GANLoss("microgan", num_discriminators=2, alpha=alpha, alpha_schedule="static")
    assert gan.discriminator_loss(D, real, fake).item() == pytest.approx(-(v1 + v2), rel=1e-6)
    assert gan.generator_loss(D, real, fake).item() == pytest.approx(g1 + g2, rel=1e-6)


def test_alpha_zero_makes_each_discriminator_a_standard_gan_on_its_microbatch():
    torch.manual_seed(3)
    K, m = 3, 4
    D = mg.MicroDiscriminators(vector_discriminator(), K)
    real, fake = torch.randn(K * m, 2), torch.randn(K * m, 2) + 1
    standard = GANLoss("standard")
    expected_d = sum(
        # GANLoss("standard") averages over the 2m real and fake samples; eq. 2 sums the two means.
        2 * standard.discriminator_loss(D.discriminators[k], real[k * m : (k + 1) * m], fake[k * m : (k + 1) * m])
        for k in range(K)
    )
    torch.testing.assert_close(mg.discriminator_loss(D, real, fake, 0.0), expected_d)
    # G's side of eq. 2 at alpha = 0: sum_k E log(1 - D_k(G(z_k))), the saturating form.
    expected_g = sum(F.logsigmoid(-D.discriminators[k](fake[k * m : (k + 1) * m])).mean() for k in range(K))
    torch.testing.assert_close(mg.generator_loss(D, fake, 0.0), expected_g)
    # ... so a fake sample gets gradient from its own discriminator only.
    fake.requires_grad_(True)
    mg.generator_loss(D, fake, 0.0).backward()
    own = fake[:m].detach().requires_grad_(True)
    F.logsigmoid(-D.discriminators[0](own)).mean().backward()
    torch.testing.assert_close(fake.grad[:m], own.grad)


def test_the_alpha_term_treats_the_other_microbatches_fakes_as_real():
    # Raising D_1's logit on the other microbatch lowers D's loss when alpha > 0 and not when alpha = 0.
    D = linear_pair([1.0, 0.0], [0.0, 0.0])
    real, fake = torch.zeros(4, 1), torch.tensor([[0.0], [0.0], [2.0], [2.0]])
    D2 = linear_pair([1.0, 0.0], [0.0, 0.0])
    fake_up = torch.tensor([[0.0], [0.0], [4.0], [4.0]])
    assert mg.discriminator_loss(D2, real, fake_up, 0.8) < mg.discriminator_loss(D, real, fake, 0.8)
    torch.testing.assert_close(
        mg.discriminator_loss(D2, real, fake_up, 0.0) - mg.discriminator_loss(D, real, fake, 0.0),
        # at alpha = 0 only D_2 (constant logit) looks at those samples, as its own: no change
        torch.tensor(0.0),
    )


def test_gradcheck_in_float64_through_beta_and_the_samples():
    torch.manual_seed(4)
    D = mg.MicroDiscriminators(vector_discriminator(), 2).double()
    real = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    for schedule, beta0 in (("sigmoid", -1.8), ("softsign", 0.3), ("tanh", 0.7)):
        beta = torch.tensor(beta0, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda b, x: mg.generator_loss(D, x, mg.alpha_of_beta(schedule, b)), (beta, fake)
        )
    assert torch.autograd.gradcheck(lambda r, x: mg.discriminator_loss(D, r, x, 0.4), (real, fake))


def test_g_always_raises_a_learned_alpha():
    # dV/dalpha = sum_k E log D_k(G(z_-k)) < 0: G's gradient w.r.t. beta is negative (section 3.1.2).
    torch.manual_seed(5)
    for schedule in ("sigmoid", "softsign", "tanh"):
        gan = GANLoss("microgan", num_discriminators=4, alpha_schedule=schedule)
        D = gan.convert_discriminator(vector_discriminator())
        (beta,) = gan.alpha_parameters()
        gan.generator_loss(D, torch.randn(8, 2), torch.randn(8, 2)).backward()
        assert beta.grad < 0
        # D's loss sees alpha as a constant.
        beta.grad = None
        gan.discriminator_loss(D, torch.randn(8, 2), torch.randn(8, 2)).backward()
        assert beta.grad is None


# --------------------------------------------------------------------------------------------
# alpha schedules (eq. 3)


def test_schedules_at_known_points_and_their_bounds():
    b = torch.tensor([0.0, 1.0, 10.0], dtype=torch.float64)
    torch.testing.assert_close(mg.alpha_of_beta("sigmoid", b), 1 / (1 + torch.exp(-b)))
    torch.testing.assert_close(mg.alpha_of_beta("softsign", b), torch.tensor([0.0, 0.5, 10 / 11], dtype=torch.float64))
    torch.testing.assert_close(
        mg.alpha_of_beta("tanh", b), torch.tensor([0.0, math.tanh(1.0), math.tanh(10.0)], dtype=torch.float64)
    )
    for schedule in ("sigmoid", "softsign", "tanh"):  # on eq. 3's domain beta >= beta_0
        values = mg.alpha_of_beta(schedule, torch.linspace(mg.BETA_INIT[schedule], 15.0, 200, dtype=torch.float64))
        assert (values >= 0).all() and (values < 1).all() and (values.diff() > 0).all()  # in [0, 1), increasing
    # The paper's initial values: beta_0 = -1.8 (sigmoid), 0 (softsign, tanh).
    assert mg.AlphaSchedule("sigmoid").value() == pytest.approx(1 / (1 + math.exp(1.8)), rel=1e-6)
    assert mg.AlphaSchedule("softsign").value() == 0.0 and mg.AlphaSchedule("tanh").value() == 0.0
    for schedule in ("sigmoid", "softsign", "tanh"):
        assert mg.AlphaSchedule(schedule, alpha=0.3).value() == pytest.approx(0.3, rel=1e-6)
    static = mg.AlphaSchedule("static", alpha=0.25)
    assert static.value() == 0.25 and list(static.parameters()) == []


def test_a_learned_alpha_stays_on_the_domain_beta_at_least_beta0():
    schedule = mg.AlphaSchedule("sigmoid")
    with torch.no_grad():
        schedule.beta.fill_(-5.0)
    assert schedule.value() == pytest.approx(1 / (1 + math.exp(1.8)), rel=1e-6)
    with torch.no_grad():
        schedule.beta.fill_(-1.8)
    schedule().backward()  # at beta_0 itself the gradient passes (G can raise alpha from the start)
    assert schedule.beta.grad > 0


# --------------------------------------------------------------------------------------------
# the K discriminators


@pytest.mark.parametrize("kind", ["vector", "image"])
def test_the_k_discriminators_are_independent_fresh_copies(kind):
    torch.manual_seed(6)
    source = vector_discriminator() if kind == "vector" else make_image_discriminator(1, 2)
    before = {k: v.clone() for k, v in source.state_dict().items()}
    D = GANLoss("microgan", num_discriminators=3).convert_discriminator(source)
    assert isinstance(D, mg.MicroDiscriminators) and D.num_discriminators == 3
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())  # the source is untouched
    params = [list(d.parameters()) for d in D.discriminators]
    # One module: its parameters (one optimiser) and state_dict cover all K copies.
    assert len(list(D.parameters())) == 3 * len(list(source.parameters()))
    assert len(D.state_dict()) == 3 * len(source.state_dict())
    pointers = [p.data_ptr() for ps in params for p in ps]
    assert len(set(pointers)) == len(pointers)  # no shared storage
    for i in range(3):
        assert all(not torch.equal(a, b) for a, b in zip(params[i], source.parameters()))
        for j in range(i + 1, 3):
            assert all(not torch.equal(a, b) for a, b in zip(params[i], params[j]))
    if kind == "image":  # spectral norm kept, with its own power-iteration vectors
        convs = [[m for m in d.modules() if isinstance(m, nn.Conv2d)] for d in D.discriminators]
        assert all(nn.utils.parametrize.is_parametrized(c, "weight") for c in convs[0])
        u0, u1 = (c[0].parametrizations.weight[0]._u for c in convs[:2])
        assert not torch.equal(u0, u1)
    x = torch.randn(4, *((2,) if kind == "vector" else (1, 32, 32)))
    assert D(x).shape == (3, 4)
    # A step on D_0's loss alone changes D_0 only.
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    snapshot = [[p.detach().clone() for p in ps] for ps in params]
    D.logits(0, x).sum().backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(snapshot[0], params[0]))
    assert all(torch.equal(a, b) for k in (1, 2) for a, b in zip(snapshot[k], params[k]))


# --------------------------------------------------------------------------------------------
# Intra FID (section 4.1)


def test_intra_frechet_distance_is_the_fd_between_random_subsets():
    torch.manual_seed(7)
    features = torch.randn(30, 3)
    order = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    expected = frechet_distance(features[order[:15]], features[order[15:]])
    assert mg.intra_frechet_distance(features, 2, torch.Generator().manual_seed(1)) == pytest.approx(expected)
    parts = features[order].view(3, 10, 3)
    expected3 = (
        frechet_distance(parts[0], parts[1])
        + frechet_distance(parts[0], parts[2])
        + frechet_distance(parts[1], parts[2])
    ) / 3
    assert mg.intra_frechet_distance(features, 3, torch.Generator().manual_seed(1)) == pytest.approx(expected3)
    # A collapsed sample has no diversity: its two halves are identical in distribution and spread.
    collapsed = torch.cat([torch.zeros(15, 3), torch.zeros(15, 3)]) + 1e-3 * torch.randn(30, 3)
    assert mg.intra_frechet_distance(collapsed) < 1e-4 < mg.intra_frechet_distance(features)


# --------------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_discriminators=1), "num_discriminators"),
        (dict(num_discriminators=2.5), "num_discriminators"),
        (dict(alpha=1.5, alpha_schedule="static"), "alpha"),
        (dict(alpha=-0.1, alpha_schedule="static"), "alpha"),
        (dict(alpha_schedule="static"), "alpha"),
        (dict(alpha=0.0, alpha_schedule="sigmoid"), "alpha"),
        (dict(alpha=1.0, alpha_schedule="tanh"), "alpha"),
        (dict(alpha="0.5", alpha_schedule="static"), "alpha"),
        (dict(alpha_schedule="cosine"), "alpha_schedule"),
    ],
)
def test_bad_options_raise_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}:"):
        GANLoss("microgan", **kwargs)


def test_bad_batches_and_discriminators_raise_naming_the_argument():
    gan = GANLoss("microgan", num_discriminators=4, alpha=0.5, alpha_schedule="static")
    D = gan.convert_discriminator(vector_discriminator())
    with pytest.raises(ValueError, match="^num_discriminators:.*6 samples"):
        gan.discriminator_loss(D, torch.randn(6, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match="^num_discriminators:"):
        gan.generator_loss(D, torch.randn(6, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match="^fake:"):
        gan.discriminator_loss(D, torch.randn(8, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="^discriminator:"):
        gan.discriminator_loss(vector_discriminator(), torch.randn(8, 2), torch.randn(8, 2))
    with pytest.raises(ValueError, match="^alpha:"):
        mg.discriminator_loss(D, torch.randn(8, 2), torch.randn(8, 2), torch.tensor(float("nan")))
    with pytest.raises(ValueError, match="^alpha:"):
        mg.generator_loss(D, torch.randn(8, 2), 2.0)
    with pytest.raises(ValueError, match="^method:"):
        GANLoss("standard").alpha()
    with pytest.raises(ValueError, match="^discriminator:"):
        mg.MicroDiscriminators("not a module", 2)
    with pytest.raises(ValueError, match="^num_subsets:"):
        mg.intra_frechet_distance(torch.randn(10, 2), 1)
    with pytest.raises(ValueError, match="^features:"):
        mg.intra_frechet_distance(torch.randn(3, 2), 2)
    with pytest.raises(ValueError, match="^num_discriminators:"):
        TrainConfig(method="microgan", batch_size=10, num_discriminators=4).validate()
    with pytest.raises(ValueError, match="^alpha_schedule:"):
        TrainConfig(method="microgan", alpha_schedule="linear").validate()
    with pytest.raises(ValueError, match="^alpha:"):
        TrainConfig(method="microgan", alpha_schedule="static").validate()


# --------------------------------------------------------------------------------------------
# trainer and CLI

TINY = dict(steps=4, batch_size=16, hidden=8, g_layers=2, d_layers=2, eval_samples=200, log_every=1)


def test_trainer_on_ring8_learns_alpha_records_it_and_resumes_it(tmp_path):
    config = TrainConfig(dataset="ring8", method="microgan", num_discriminators=4, **TINY)
    trainer = Trainer(config)
    assert isinstance(trainer.discriminator, mg.MicroDiscriminators) and trainer.discriminator.num_discriminators == 4
    body = trainer.discriminator.discriminators[0]
    assert [type(m) for m in body] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]  # the standard D
    assert trainer.loss.alpha_parameters()[0] in {p for g in trainer.opt_g.param_groups for p in g["params"]}
    trainer.train(progress=False)
    alphas = trainer.history["alpha"]
    assert len(alphas) == 4 and alphas[0] > 1 / (1 + math.exp(1.8)) and all(b > a for a, b in zip(alphas, alphas[1:]))
    metrics = trainer.evaluate()
    assert metrics["num_modes"] == 8 and metrics["num_samples"] == 200
    # A checkpoint holds beta: resuming reproduces the uninterrupted run.
    half = Trainer(config)
    half.train(steps=2, progress=False)
    half.save(str(tmp_path / "c.pt"))
    resumed = Trainer.from_checkpoint(str(tmp_path / "c.pt"))
    assert resumed.loss.alpha() == half.loss.alpha() != Trainer(config).loss.alpha()
    resumed.train(progress=False)
    assert resumed.history == trainer.history


def test_trainer_on_digit_images_with_fd_tracking(digit_classifier_cache):
    config = TrainConfig(
        dataset="digits", method="microgan", num_discriminators=2, alpha=0.5, alpha_schedule="static",
        steps=2, batch_size=8, hidden=2, latent_dim=8, eval_samples=100, log_every=1,
    )  # fmt: skip
    trainer = Trainer(config)
    assert all(
        nn.utils.parametrize.is_parametrized(m, "weight")
        for m in trainer.discriminator.modules()
        if isinstance(m, nn.Conv2d)
    )
    tracker = mg.FDTracker(trainer, every=1, num_samples=40)
    summary = tracker.train()
    assert trainer.step == 2 and trainer.history["alpha"] == [0.5, 0.5]
    assert summary["step"] == [1, 2] and len(summary["intra_fd"]) == 2
    assert summary["cumulative_intra_fd"] == pytest.approx(sum(summary["intra_fd"]))
    assert summary["min_fd"] == min(summary["fd"]) <= summary["mean_fd"] and summary["min_fd"] > 0
    metrics = trainer.evaluate()
    assert metrics["num_modes"] == 10 and metrics["frechet_distance"] > 0


def test_cli_smoke_run(tmp_path):
    out = tmp_path / "run"
    args = ["--dataset", "ring8", "--method", "microgan", "--steps", "3", "--batch-size", "16", "--set-size", "4"]
    args += ["--hidden", "8"]
    args += ["--num-discriminators", "4", "--alpha", "0.3", "--alpha-schedule", "static", "--eval-samples", "100"]
    args += ["--out", str(out), "--no-progress"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run(
        [sys.executable, "-m", "batchgan_ext.train", *args],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "metrics.json").read_text())
    (run,) = result["runs"]
    assert run["method"] == "microgan" and run["config"]["num_discriminators"] == 4
    assert run["config"]["alpha"] == 0.3 and run["config"]["alpha_schedule"] == "static"
    assert (out / "alpha.png").stat().st_size > 0 and (out / "samples.png").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "batchgan_ext.train", *args[:-3], "--alpha", "2", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=env,
        timeout=120,
    )
    assert bad.returncode != 0 and "alpha:" in bad.stderr


def test_image_runs_record_section4_curves_and_a_killed_run_resumes_them(tmp_path, digit_classifier_cache):
    from batchgan_ext.train.sweep import Run, train_run

    config = TrainConfig(
        dataset="digits", method="microgan", num_discriminators=2, alpha=0.5, alpha_schedule="static",
        steps=4, batch_size=8, hidden=2, latent_dim=8, eval_samples=100, log_every=1,
    )  # fmt: skip
    straight = train_run(Run(config, str(tmp_path / "a.json"), str(tmp_path / "a.pt"), "a"), fd_every=2, fd_samples=40)
    curve = straight["fd_curve"]
    assert curve["step"] == [2, 4] and len(curve["intra_fd"]) == len(curve["fd"]) == 2
    assert straight["cumulative_intra_fd"] == pytest.approx(sum(curve["intra_fd"]))
    assert straight["min_fd"] == min(curve["fd"]) and straight["mean_fd"] == pytest.approx(sum(curve["fd"]) / 2)

    class Killed(Exception):
        pass

    def kill(_steps):
        raise Killed

    run = Run(config, str(tmp_path / "b.json"), str(tmp_path / "b.pt"), "b")
    with pytest.raises(Killed):  # killed right after the checkpoint at step 2
        train_run(run, checkpoint_every=2, report=kill, fd_every=2, fd_samples=40)
    assert os.path.exists(run.checkpoint_path) and os.path.exists(run.checkpoint_path + ".fd.json")
    resumed = train_run(run, checkpoint_every=2, fd_every=2, fd_samples=40)
    assert resumed["fd_curve"] == curve and resumed["history"] == straight["history"]
    assert not os.path.exists(run.checkpoint_path) and not os.path.exists(run.checkpoint_path + ".fd.json")


def test_experiment_cli_prints_section4_table_for_images_and_refuses_fd_curves_for_2d(
    tmp_path, digit_classifier_cache, capsys
):
    args = ["--out", str(tmp_path / "out"), "--checkpoints", str(tmp_path / "ckpt"), "--seeds", "1"]
    args += ["--num-discriminators", "2", "--steps", "2", "--batch-size", "8", "--fd-every", "1", "--fd-samples", "40"]
    assert mg.main([*args, "--dataset", "digits", "--preset", "image-demo", "--alphas", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "| digits | microgan | 0.5 | 1 |" in printed and "cumulative Intra FD" in printed
    assert "evaluated at steps 1-2, every 1, 40 generated images each" in printed
    with pytest.raises(SystemExit):
        mg.main([*args, "--dataset", "ring8", "--preset", "demo"])
    assert "--fd-every: section 4's FD curves need an image dataset" in capsys.readouterr().err
