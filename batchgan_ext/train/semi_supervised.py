"""Semi-supervised learning with a GAN (Salimans et al., 2016, "Improved techniques for training
GANs", section 5), on the digits, with a supervised-only baseline.

The discriminator is a K-class classifier with a (K+1)-th class "generated" whose logit is fixed at 0,
so that with Z(x) = sum_k exp l_k(x) the probability of "real" is

    D(x) = Z(x) / (Z(x) + 1) = sigmoid(logsumexp_k l_k(x)),

and its loss is L = L_supervised + L_unsupervised (the paper's weighting, 1 : 1):

    L_supervised   = -E_{x,y ~ labelled} log p(y | x, y < K+1)      (softmax over the K logits)
    L_unsupervised = -{E_{x ~ data} log D(x) + E_{z} log(1 - D(G(z)))}

L_unsupervised is the standard GAN loss on the logit logsumexp(l), computed with the package's
``bernoulli_kl_loss`` (one set per sample: the binary cross-entropy), once per expectation. The
generator is trained by feature matching, ||E f(x) - E f(G(z))||^2 on an intermediate layer f of D
(``techniques.feature_matching_loss``), as the paper does for its semi-supervised results.

Any classifier-shaped network (N, ...) -> (N, K) becomes such a discriminator with
:class:`SemiSupervisedDiscriminator`; its features are the input of its last nn.Linear/nn.Conv2d or
the output of a named module. The user calls the losses from their own loop; :func:`train_semi_supervised`
is that loop for the digits (sklearn's 8x8 digits, ``image_datasets``), with the package's DCGAN
generator, and trains a supervised-only classifier of the same body with the same optimiser and steps.

CLI (one JSON per (labels, seed), resumable, and a table of mean +- standard error over seeds):

    python -m batchgan_ext.train.semi_supervised --labels 10,50,100 --seeds 3 --out results/semi-supervised
"""

import argparse
import copy
import dataclasses
import json
import math
import os
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

from .. import bernoulli_kl_loss
from ..ops._common import check_int, check_real
from . import techniques
from .image_datasets import load_digit_images
from .image_networks import make_image_generator
from .results import mean_se, write_json

__all__ = [
    "NUM_CLASSES",
    "SemiSupervisedConfig",
    "SemiSupervisedDiscriminator",
    "discriminator_loss",
    "generator_loss",
    "labeled_subset",
    "main",
    "make_digit_body",
    "real_logit",
    "real_probability",
    "supervised_loss",
    "train_semi_supervised",
    "unsupervised_loss",
]

NUM_CLASSES = 10  # the digits


# -------------------------------------------------------------------------------------------
# the (K+1)-class discriminator


class SemiSupervisedDiscriminator(nn.Module):
    """A classifier ``(N, ...) -> (N, num_classes)`` logits l_1..l_K used as the (K+1)-class
    discriminator of section 5 (the "generated" class's logit fixed at 0).

    ``feature_layer``: the dotted name of a submodule of ``classifier`` whose output is the feature
    layer f of feature matching; None: the input of the classifier's last nn.Linear/nn.Conv2d (in
    registration order, which is execution order for nn.Sequential), improved-gan's choice of the
    last hidden layer. :meth:`logits_and_features` takes them with ``techniques.discriminator_features``
    (a forward hook for the duration of the call).
    """

    def __init__(self, classifier: nn.Module, num_classes: int = NUM_CLASSES, feature_layer: str | None = None):
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise ValueError(f"classifier: expected an nn.Module, got {type(classifier).__name__}")
        self.num_classes = check_int(num_classes, "num_classes")
        if self.num_classes < 2:
            raise ValueError(f"num_classes: expected at least 2 classes, got {num_classes}")
        self.classifier = classifier
        # Checked now (a missing name, a network without a last layer), taken by a hook at each call.
        try:
            techniques.feature_layer(classifier, feature_layer)
        except ValueError as error:
            raise ValueError(f"feature_layer: {error}") from None
        self.feature_layer = feature_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The K class logits, (N, num_classes), checked."""
        return self._checked(self.classifier(x), x)

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The K logits and the feature layer's activations, flattened to (N, F), of one forward pass."""
        logits, features = techniques.discriminator_features(self.classifier, x, self.feature_layer)
        return self._checked(logits, x), features.flatten(1)

    def _checked(self, logits, x: torch.Tensor) -> torch.Tensor:
        _check_logits(logits, "classifier output", self.num_classes)
        if logits.shape[0] != x.shape[0]:
            raise ValueError(f"classifier output: {logits.shape[0]} rows of logits for a batch of {x.shape[0]}")
        return logits


def make_digit_body(num_classes: int = NUM_CLASSES, width: int = 32, dropout: float = 0.5) -> nn.Sequential:
    """The small CNN of both the GAN's discriminator and the baseline: (N, 1, 32, 32) -> (N, K).

    The digits are 8x8 images upsampled to 32x32, so it first average-pools back to 8x8 (nearly
    lossless, 16x cheaper). Dropout on the input (dropout / 2) and before the last hidden layer
    regularises both models alike (improved-gan's MNIST model uses Gaussian noise for this).
    The input of the last nn.Linear (4 * width features) is the feature-matching layer."""
    width = check_int(width, "width")
    dropout = check_real(dropout, "dropout")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
    return nn.Sequential(
        nn.AvgPool2d(4),  # 32x32 -> 8x8
        nn.Dropout(dropout / 2),
        nn.Conv2d(1, width, 3, 1, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 3, 2, 1),  # 4x4
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 2 * width, 3, 1, 1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * width * 16, 4 * width),
        nn.LeakyReLU(0.2),
        nn.Linear(4 * width, check_int(num_classes, "num_classes")),
    )


# -------------------------------------------------------------------------------------------
# losses


def _check_logits(logits, name: str, num_classes: int | None = None) -> None:
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"{name}: expected a tensor of class logits, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {logits.dtype}")
    if logits.dim() != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(
            f"{name}: expected a non-empty (N, K) tensor of K >= 2 class logits, got {tuple(logits.shape)}"
        )
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"{name}: expected {num_classes} class logits per sample, got shape {tuple(logits.shape)}")


def real_logit(logits: torch.Tensor) -> torch.Tensor:
    """logsumexp_k l_k, shape (N,): the logit of D(x) = Z/(Z+1) = sigmoid(log Z), the "generated"
    class's logit being 0."""
    _check_logits(logits, "logits")
    return torch.logsumexp(logits, dim=1)


def real_probability(logits: torch.Tensor) -> torch.Tensor:
    """D(x) = Z(x) / (Z(x) + 1), Z = sum_k exp l_k, computed stably as sigmoid(logsumexp l)."""
    return torch.sigmoid(real_logit(logits))


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_supervised: the mean cross-entropy of the labels under the softmax over the K real classes
    (p(y | x, y < K+1): the "generated" class drops out of the conditional)."""
    _check_logits(logits, "logits_labeled")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        raise ValueError(f"labels: expected an int64 tensor, got {getattr(labels, 'dtype', type(labels).__name__)}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(
            f"labels: expected shape ({logits.shape[0]},) (one per labelled logit row), got {tuple(labels.shape)}"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise ValueError(f"labels: expected classes in [0, {logits.shape[1]}), got {labels.min()}..{labels.max()}")
    return F.cross_entropy(logits, labels)


def unsupervised_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """L_unsupervised = -E_data log D(x) - E_G log(1 - D(G(z))), D = sigmoid(logsumexp l): each
    expectation is bernoulli_kl_loss against 1 (real) / 0 (fake) with one set per sample."""
    _check_logits(logits_real, "logits_unlabeled")
    _check_logits(logits_fake, "logits_fake", logits_real.shape[1])
    real, fake = torch.logsumexp(logits_real, dim=1), torch.logsumexp(logits_fake, dim=1)
    return bernoulli_kl_loss(real, 1.0, "mbgan", num_sets=real.shape[0]) + bernoulli_kl_loss(
        fake, 0.0, "mbgan", num_sets=fake.shape[0]
    )


def discriminator_loss(
    logits_labeled: torch.Tensor,
    labels: torch.Tensor,
    logits_unlabeled: torch.Tensor,
    logits_fake: torch.Tensor,
    unsupervised_weight: float = 1.0,
) -> torch.Tensor:
    """D's loss L = L_supervised + unsupervised_weight * L_unsupervised (the paper: weight 1;
    improved-gan's code halves each expectation, i.e. weight 0.5). Detach the fakes for D's step."""
    _check_logits(logits_labeled, "logits_labeled")
    for name, logits in (("logits_unlabeled", logits_unlabeled), ("logits_fake", logits_fake)):
        _check_logits(logits, name, logits_labeled.shape[1])
    weight = check_real(unsupervised_weight, "unsupervised_weight")
    if not (0.0 <= weight < math.inf):
        raise ValueError(f"unsupervised_weight: expected a finite non-negative weight, got {unsupervised_weight}")
    return supervised_loss(logits_labeled, labels) + weight * unsupervised_loss(logits_unlabeled, logits_fake)


def generator_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """G's feature-matching loss ||E f(x) - E f(G(z))||^2 on D's feature layer
    (:meth:`SemiSupervisedDiscriminator.logits_and_features`)."""
    return techniques.feature_matching_loss(real_features, fake_features)


# -------------------------------------------------------------------------------------------
# the digits: labelled subset, training and evaluation


def labeled_subset(labels: torch.Tensor, num_labels: int, seed: int, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Sorted indices into ``labels`` of ``num_labels`` samples, num_labels / num_classes of each
    class, drawn without replacement by a generator seeded with ``seed``."""
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1:
        raise ValueError(f"labels: expected a 1-D int64 tensor, got {getattr(labels, 'dtype', type(labels).__name__)}")
    num_classes = check_int(num_classes, "num_classes")
    num_labels = check_int(num_labels, "num_labels")
    seed = check_int(seed, "seed", minimum=0)
    if num_labels % num_classes != 0:
        raise ValueError(f"num_labels: expected a multiple of {num_classes} (class-balanced), got {num_labels}")
    if num_labels > labels.numel():
        raise ValueError(f"num_labels: {num_labels} is more than the split's {labels.numel()} samples")
    per_class = num_labels // num_classes
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for k in range(num_classes):
        (index,) = torch.nonzero(labels == k, as_tuple=True)
        if index.numel() < per_class:
            raise ValueError(f"num_labels: {per_class} per class, but class {k} has {index.numel()} samples")
        chosen.append(index[torch.randperm(index.numel(), generator=generator)[:per_class]])
    return torch.sort(torch.cat(chosen)).values


@dataclasses.dataclass
class SemiSupervisedConfig:
    """One run: ``num_labels`` labelled training digits (class-balanced, drawn with ``seed``), the
    rest of the training split unlabelled. ``steps`` optimiser steps for D (one G step each) and as
    many for the baseline, Adam(lr, betas (beta1, 0.999)) for all. Batches of ``batch_size``
    labelled (drawn with replacement: the labelled set is small), unlabelled and generated images."""

    num_labels: int = 50
    seed: int = 0
    steps: int = 800
    batch_size: int = 64
    lr: float = 2e-3
    beta1: float = 0.5
    latent_dim: int = 64
    generator_width: int = 8
    body_width: int = 32
    dropout: float = 0.5
    unsupervised_weight: float = 1.0
    eval_every: int = 100

    def __post_init__(self):
        for name in ("num_labels", "steps", "batch_size", "latent_dim", "generator_width", "body_width", "eval_every"):
            check_int(getattr(self, name), name)
        check_int(self.seed, "seed", minimum=0)
        for name in ("lr", "beta1", "dropout", "unsupervised_weight"):
            value = check_real(getattr(self, name), name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: expected a finite non-negative number, got {value}")
        if self.num_labels % NUM_CLASSES != 0:
            raise ValueError(
                f"num_labels: expected a multiple of {NUM_CLASSES} (class-balanced), got {self.num_labels}"
            )


@torch.no_grad()
def _test_error(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    was_training = model.training
    model.eval()
    error = float((model(images).argmax(1) != labels).float().mean())
    model.train(was_training)
    return error


def train_semi_supervised(config: SemiSupervisedConfig, log=None) -> dict:
    """Trains the GAN (D: the (K+1)-class :func:`make_digit_body`, G: ``make_image_generator``) and
    the supervised-only baseline (the same body and initial weights, cross-entropy on the labelled
    images alone) on the digits; returns the run's record: the final held-out test errors of both,
    their minimum over the evaluations (an oracle early stopping, optimistic), and the curves.
    Seeded and deterministic on one thread."""
    if not isinstance(config, SemiSupervisedConfig):
        raise ValueError(f"config: expected a SemiSupervisedConfig, got {type(config).__name__}")
    start = time.perf_counter()
    images, labels = load_digit_images("train")
    test_images, test_labels = load_digit_images("test")
    labeled = labeled_subset(labels, config.num_labels, config.seed)
    unlabeled = torch.ones(labels.numel(), dtype=torch.bool)
    unlabeled[labeled] = False
    x_lab, y_lab, x_unl = images[labeled], labels[labeled], images[unlabeled]
    n = config.batch_size
    betas = (config.beta1, 0.999)
    curves: dict[str, list] = {"step": [], "gan": [], "baseline": []}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        body = make_digit_body(NUM_CLASSES, config.body_width, config.dropout)
        baseline = copy.deepcopy(body)  # the same initial weights
        discriminator = SemiSupervisedDiscriminator(body, NUM_CLASSES)
        generator = make_image_generator(config.latent_dim, channels=1, width=config.generator_width)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=betas)
        opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas)
        opt_b = torch.optim.Adam(baseline.parameters(), lr=config.lr, betas=betas)
        draws = torch.Generator().manual_seed(config.seed)
        for step in range(1, config.steps + 1):
            index_lab = torch.randint(len(x_lab), (n,), generator=draws)
            index_unl = torch.randint(len(x_unl), (n,), generator=draws)
            z = torch.randn(n, config.latent_dim, generator=draws)
            # D step on labelled, unlabelled and generated images.
            fake = generator(z)
            loss_d = discriminator_loss(
                discriminator(x_lab[index_lab]),
                y_lab[index_lab],
                discriminator(x_unl[index_unl]),
                discriminator(fake.detach()),
                config.unsupervised_weight,
            )
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            # G step: feature matching against a fresh unlabelled batch, through the updated D.
            index_real = torch.randint(len(x_unl), (n,), generator=draws)
            with torch.no_grad():
                _, real_features = discriminator.logits_and_features(x_unl[index_real])
            _, fake_features = discriminator.logits_and_features(fake)
            loss_g = generator_loss(real_features, fake_features)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            # The baseline's step on the same labelled batch.
            loss_b = F.cross_entropy(baseline(x_lab[index_lab]), y_lab[index_lab])
            opt_b.zero_grad(set_to_none=True)
            loss_b.backward()
            opt_b.step()
            if step % config.eval_every == 0 or step == config.steps:
                curves["step"].append(step)
                curves["gan"].append(_test_error(discriminator, test_images, test_labels))
                curves["baseline"].append(_test_error(baseline, test_images, test_labels))
                if log is not None:
                    log(
                        f"labels {config.num_labels} seed {config.seed} step {step}: loss_d {loss_d.item():.3f} "
                        f"loss_g {loss_g.item():.4f} test error gan {curves['gan'][-1]:.3f} "
                        f"baseline {curves['baseline'][-1]:.3f}"
                    )
    return dict(
        num_labels=config.num_labels,
        seed=config.seed,
        gan_test_error=curves["gan"][-1],
        baseline_test_error=curves["baseline"][-1],
        gan_best_test_error=min(curves["gan"]),
        baseline_best_test_error=min(curves["baseline"]),
        test_size=int(test_labels.numel()),
        unlabeled_size=int(x_unl.shape[0]),
        curves=curves,
        wall_seconds=time.perf_counter() - start,
        config=dataclasses.asdict(config),
    )


# -------------------------------------------------------------------------------------------
# the CLI


def _cell(values: list[float]) -> str:
    mean, se = mean_se(values)
    return f"{100 * mean:.1f}" + ("" if se is None else f" ± {100 * se:.1f}")


def format_table(records: list[dict]) -> str:
    """A markdown table, one row per labelled-set size: test error (%) mean ± s.e. over seeds of
    the GAN and of the supervised-only baseline (final, and at its best evaluation), and on how
    many seeds the GAN's final error is below the baseline's."""
    header = (
        "| labels | seeds | GAN test error (%) | supervised-only (%) | supervised-only, best eval (%) "
        "| GAN below supervised |\n|---|---|---|---|---|---|"
    )
    lines = [header]
    for num_labels in sorted({r["num_labels"] for r in records}):
        group = [r for r in records if r["num_labels"] == num_labels]
        wins = sum(r["gan_test_error"] < r["baseline_test_error"] for r in group)
        lines.append(
            f"| {num_labels} | {len(group)} | {_cell([r['gan_test_error'] for r in group])} "
            f"| {_cell([r['baseline_test_error'] for r in group])} "
            f"| {_cell([r['baseline_best_test_error'] for r in group])} | {wins} of {len(group)} |"
        )
    return "\n".join(lines)


def _parse_labels(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--labels: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError("--labels: expected at least one labelled-set size")
    for v in values:
        if v <= 0 or v % NUM_CLASSES != 0:
            raise ValueError(f"--labels: expected positive multiples of {NUM_CLASSES}, got {v}")
    return values


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="python -m batchgan_ext.train.semi_supervised",
        description="Semi-supervised GAN (Salimans et al. 2016, section 5) vs a supervised-only classifier on the "
        "digits: one JSON per (labels, seed) in --out (finished runs are skipped), and table.md.",
    )
    defaults = SemiSupervisedConfig()
    parser.add_argument("--labels", default="10,50,100", help="labelled-set sizes, multiples of 10")
    parser.add_argument("--seeds", type=int, default=3, help="seeds --seed, --seed + 1, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--unsupervised-weight", type=float, default=defaults.unsupervised_weight)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: deterministic, shared CPU)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    labels = _parse_labels(args.labels)
    check_int(args.seeds, "--seeds")
    torch.set_num_threads(check_int(args.threads, "--threads"))
    log = None if args.quiet else (lambda text: print(text, flush=True))
    records = []
    for num_labels in labels:
        for seed in range(args.seed, args.seed + args.seeds):
            path = os.path.join(args.out, f"labels{num_labels}-seed{seed}.json")
            config = SemiSupervisedConfig(
                num_labels=num_labels,
                seed=seed,
                steps=args.steps,
                batch_size=args.batch_size,
                lr=args.lr,
                eval_every=args.eval_every,
                unsupervised_weight=args.unsupervised_weight,
            )
            if os.path.exists(path):
                with open(path) as f:
                    record = json.load(f)
                if record.get("config") != dataclasses.asdict(config):
                    raise ValueError(
                        f"--out: {path} is a finished run of another configuration ({record.get('config')}); "
                        "use another --out folder or the same options"
                    )
                records.append(record)
                if log:
                    log(f"{path}: finished, skipped")
                continue
            record = train_semi_supervised(config, log)
            write_json(path, record)
            records.append(record)
            if log:
                log(
                    f"{path}: gan {record['gan_test_error']:.3f}, baseline {record['baseline_test_error']:.3f}, "
                    f"{record['wall_seconds']:.0f} s"
                )
    table = format_table(records)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table + "\n")
    print(table, flush=True)
    return records


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:
        sys.exit(f"error: {error}")
