"""Packaging: the ops and modules need torch and numpy only (the training layer's matplotlib, tqdm, scikit-learn
and scipy are an extra whose absence is a clear error), and the version and metadata have one source."""

import os
import re
import subprocess
import sys
import textwrap

import batchgan_ext

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTRA_MODULES = ("matplotlib", "tqdm", "sklearn", "scipy")
INSTALL_HINT = "pip install 'batchgan_ext[train]'"

# Every public name of batchgan_ext, used the way a discriminator does (forward and backward).
_WORKLOAD = textwrap.dedent(
    """
    import pkgutil
    import torch
    from torch import nn
    import batchgan_ext as bg

    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(8, 3, 6, 6), torch.randn(8, 3, 6, 6, requires_grad=True)
    mixer = bg.MixedBatch(gamma=0.5, num_sets=2, complement=True)
    batch, target, _ = mixer(real, fake, generator=g)  # 16 samples in 4 sets
    beta, _ = bg.sample_mixing(8, num_sets=2, gamma=0.5, generator=g)
    mixed, complement = bg.mix(real, fake, beta, complement=True)
    D = nn.Sequential(
        bg.EquivariantConv2d(3, 4, 3, padding=1, set_size=4, activation="relu"),
        bg.MinibatchStdDev(group_size=4),
        nn.Flatten(),
        bg.EquivariantLinear(5 * 36, 8, set_size=4, activation="leaky_relu"),
        bg.MinibatchDiscrimination(8, 4, kernel_dims=3, num_sets=4),
    )
    features = D(bg.SetBatchNorm(nn.BatchNorm2d(3), set_size=4)(batch))
    logits = bg.SetMean(set_size=4)(features).sum(1).repeat_interleave(4) + features.sum(1)
    loss = bg.BernoulliKLLoss("mbgan", num_sets=4)(logits, target)
    loss = loss + bg.bernoulli_kl_loss(logits, target, "bgan", num_sets=4) + bg.batch_generator_loss(logits, "mbgan", 4)
    x = torch.randn(8, 3, 5, 5)
    w, wg = torch.randn(2, 3, 3, 3), torch.randn(2, 3, 3, 3)
    y = bg.equivariant_conv2d(x, w, wg, None, 1, 1, 1, 1, 2, "identity", 0.01)
    y = bg.minibatch_stddev(y, group_size=4).flatten(1)
    y = bg.equivariant_linear(y, torch.randn(4, y.shape[1]), torch.randn(4, y.shape[1]), None, 2)
    y = bg.pairwise_l1_features(y.view(8, 2, 2), num_sets=2).sum() + bg.set_mean(y, num_sets=2).sum()
    converted = bg.make_equivariant(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(32, 1)), set_size=4)
    packed = nn.Sequential(bg.Pack(2), nn.Conv2d(6, 2, 3), nn.Flatten(), nn.Linear(32, 1))(mixed)
    y = y + bg.pack(complement, 4).sum() + packed.sum()
    G = nn.Sequential(nn.Conv2d(3, 4, 1), bg.VirtualBatchNorm2d(4), nn.Flatten(), nn.Linear(144, 4))
    G2 = nn.Sequential(nn.Linear(4, 3), bg.VirtualBatchNorm1d(3))
    with bg.record_reference(G), bg.record_reference(G2):  # the reference batches' statistics
        G2(G(real))
    y = y + G2(G(mixed)).sum()
    (loss + y + converted(mixed).sum() + complement.sum()).backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all()
    assert "cpu" in bg.build_info()["backends"]
    # Every submodule imports too (the training layer's extras are imported where they are used, not on import).
    for module in pkgutil.walk_packages(bg.__path__, "batchgan_ext."):
        if not module.name.endswith("__main__"):
            __import__(module.name)
    """
)


def _run(code, block=()):
    """Runs `code` in a fresh interpreter in which the modules in `block` cannot be imported."""
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in block)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(batchgan_ext.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_parent, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-c", prelude + code], cwd="/", env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_workload_uses_every_public_name():
    assert [name for name in batchgan_ext.__all__ if f"bg.{name}(" not in _WORKLOAD] == []


def test_ops_and_modules_import_none_of_the_training_extras():
    # torch.hub imports tqdm itself where it is installed: count only what comes after `import torch`.
    out = _run(
        "import torch\nbaseline = set(sys.modules)\n"
        + _WORKLOAD
        + f"print(sorted(m for m in set(sys.modules) - baseline if m.split('.')[0] in {EXTRA_MODULES!r}))\n"
    )
    assert out.strip().splitlines()[-1] == "[]"


def test_ops_and_modules_work_without_the_training_extras():
    _run(_WORKLOAD, block=EXTRA_MODULES)


_TINY = "dict(steps=2, n_disc=1, batch_size=16, set_size=4, hidden=8, g_layers=2, d_layers=2, eval_samples=50)"


def test_training_without_tqdm_needs_progress_off_and_says_which_extra():
    out = _run(
        textwrap.dedent(
            f"""
            from batchgan_ext.train import TrainConfig, Trainer
            trainer = Trainer(TrainConfig(method="mbgan", dataset="ring8", **{_TINY}))
            trainer.train(progress=False)
            assert trainer.step == 2
            try:
                trainer.train(steps=3, progress=True)
            except ImportError as error:
                print(error)
            """
        ),
        block=["tqdm"],
    )
    assert "batchgan_ext.train: the progress bar" in out and "needs tqdm" in out and INSTALL_HINT in out


def test_cli_without_matplotlib_fails_before_training_and_says_which_extra(tmp_path):
    out_dir = str(tmp_path / "run")
    out = _run(
        textwrap.dedent(
            f"""
            from batchgan_ext.train.cli import main
            from batchgan_ext.train.plots import plot_losses
            for call in (lambda: main(["--method", "standard", "--steps", "1", "--no-progress", "--out", {out_dir!r}]),
                         lambda: plot_losses({out_dir!r} + ".png", {{}})):
                try:
                    call()
                except ImportError as error:
                    print(error)
            """
        ),
        block=["matplotlib", "matplotlib.pyplot"],
    )
    lines = out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line == f"batchgan_ext.train: plotting needs matplotlib; install the training extra: {INSTALL_HINT}"
    assert not os.path.exists(out_dir)  # refused before training, not after


# --------------------------------------------------------------------------------------------
# metadata


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_version_has_one_source():
    from setuptools.config.pyprojecttoml import read_configuration

    project = _pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    resolved = read_configuration(os.path.join(ROOT, "pyproject.toml"), expand=True)["project"]["version"]
    assert resolved == batchgan_ext.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", batchgan_ext.__version__)


def test_install_requires_torch_and_numpy_only_and_the_extras_name_the_rest():
    project = _pyproject()["project"]
    assert sorted(project["dependencies"]) == ["numpy", "torch"]
    extras = project["optional-dependencies"]
    assert {"matplotlib", "tqdm"} <= set(extras["train"])
    assert {"pytest", "hypothesis", "batchgan_ext[train]"} <= set(extras["test"])


def test_console_scripts_point_at_the_training_layers_commands():
    import importlib

    import batchgan_ext.train.cli
    import batchgan_ext.train.report
    import batchgan_ext.train.sweep

    scripts = _pyproject()["project"]["scripts"]
    expected = {
        "batchgan-train": batchgan_ext.train.cli.main,
        "batchgan-sweep": batchgan_ext.train.sweep.main,
        "batchgan-report": batchgan_ext.train.report.main,
    }
    assert set(scripts) == set(expected)
    for name, target in expected.items():
        module, _, function = scripts[name].partition(":")
        assert getattr(importlib.import_module(module), function) is target
