"""microGAN: microbatch discrimination with K discriminators (Mordido et al., "microGAN: Promoting
Variety through Microbatch Discrimination", ICLR 2019 submission).

The minibatch of B fake samples is split into K microbatches of m = B / K consecutive samples (the
real batch likewise, Algorithm 1), one per discriminator. Eq. 2, for D_k and its microbatches
x_k (real) and z_k (noise), the other microbatches' noise written z_-k::

    V(D_k, G) = E[log D_k(x_k)] + E[log(1 - D_k(G(z_k)))] + alpha * E[log D_k(G(z_-k))]

Each D_k maximises its V (real as real, its own fakes as fake, the other microbatches' fakes as
*real* with weight alpha); G minimises sum_k V(D_k, G), the original (saturating) value function
the paper uses (section 2). With alpha = 0 each D_k is a standard GAN discriminator on its
microbatch. The Bernoulli terms are the package's ``bernoulli_kl_loss`` / ``batch_generator_loss``
with one set per sample (the binary cross-entropy): -log D = BCE(l, 1), -log(1 - D) = BCE(l, 0).

alpha (section 3.1): ``static`` (a constant in [0, 1]) or self-learned, alpha = f(beta) with beta a
parameter of *G* (it is updated by G's optimiser to lower G's loss; D sees alpha as a constant),
f one of the bounded families of eq. 3 -- ``sigmoid``, ``softsign``, ``tanh`` -- with the domain
beta >= beta_0 (beta_0 = -1.8 for sigmoid, 0 for softsign and tanh, the paper's values). Since
dV/dalpha = sum_k E[log D_k(G(z_-k))] <= 0, G always pushes beta up and alpha grows and saturates
below 1. The unbounded alpha_ident of the paper is not offered (the paper shows it loses realism).

Metrics of section 4 (``intra_frechet_distance``, ``FDTracker``): Intra FID is the Fréchet distance
between two random halves of a generated sample (diversity only, not realism), cumulative Intra FID
its sum over evaluations during training; mean / minimum FID are the mean / minimum of the usual FD
to real samples over the same evaluations. Here the features are the digit classifier's, not
Inception's.
"""

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from .. import batch_generator_loss, bernoulli_kl_loss
from ..ops._common import check_int, check_real

__all__ = [
    "ALPHA_SCHEDULES",
    "BETA_INIT",
    "AlphaSchedule",
    "FDTracker",
    "MicroDiscriminators",
    "alpha_of_beta",
    "check_alpha",
    "discriminator_loss",
    "fresh_copy",
    "generator_loss",
    "intra_frechet_distance",
    "microbatch_logits",
]

ALPHA_SCHEDULES = ("static", "sigmoid", "softsign", "tanh")
# beta_0 of eq. 3: the paper's initial values (section 3.1.2, Appendix D for sigmoid).
BETA_INIT = {"sigmoid": -1.8, "softsign": 0.0, "tanh": 0.0}


# -------------------------------------------------------------------------------------------
# alpha


def alpha_of_beta(schedule: str, beta: torch.Tensor) -> torch.Tensor:
    """alpha(beta) of eq. 3: sigmoid, softsign or tanh of beta (values in (-1, 1), in [0, 1) on the
    domain beta >= beta_0 used here)."""
    if schedule == "sigmoid":
        return torch.sigmoid(beta)
    if schedule == "softsign":
        return F.softsign(beta)
    if schedule == "tanh":
        return torch.tanh(beta)
    raise ValueError(f"alpha_schedule: expected one of {ALPHA_SCHEDULES[1:]} for a learned alpha, got {schedule!r}")


def _beta_of_alpha(schedule: str, alpha: float) -> float:
    """The inverse of eq. 3's functions, for starting beta at a given alpha."""
    if schedule == "sigmoid":
        return math.log(alpha / (1.0 - alpha))
    if schedule == "softsign":
        return alpha / (1.0 - alpha)
    return math.atanh(alpha)


def check_alpha(alpha_schedule: str, alpha: float | None) -> float | None:
    """Checks an (alpha_schedule, alpha) pair; returns alpha as a float (or None). ``static`` needs
    alpha in [0, 1]; a learned schedule takes None (the paper's beta_0) or the initial alpha, in
    (0, 1) for sigmoid and [0, 1) for softsign and tanh."""
    if not isinstance(alpha_schedule, str) or alpha_schedule not in ALPHA_SCHEDULES:
        raise ValueError(f"alpha_schedule: expected one of {ALPHA_SCHEDULES}, got {alpha_schedule!r}")
    if alpha is None:
        if alpha_schedule == "static":
            raise ValueError("alpha: the static schedule needs a value in [0, 1], got None")
        return None
    alpha = check_real(alpha, "alpha")
    if alpha_schedule == "static":
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1] for the static schedule, got {alpha!r}")
    elif alpha_schedule == "sigmoid":
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha: expected an initial value in (0, 1) for the sigmoid schedule, got {alpha!r}")
    elif not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha: expected an initial value in [0, 1) for the {alpha_schedule} schedule, got {alpha!r}")
    return alpha


class AlphaSchedule(nn.Module):
    """alpha of section 3.1. ``static``: a constant buffer, no parameters. ``sigmoid`` / ``softsign`` /
    ``tanh``: alpha = f(max(beta, beta_0)) (eq. 3) with beta a parameter that belongs with the
    *generator's* parameters (give them to G's optimiser); beta starts at beta_0, the paper's value
    or f^-1(alpha) when ``alpha`` is given. Calling the module returns alpha as a 0-dim tensor,
    differentiable w.r.t. beta."""

    def __init__(self, alpha_schedule: str = "sigmoid", alpha: float | None = None):
        super().__init__()
        alpha = check_alpha(alpha_schedule, alpha)
        self.schedule = alpha_schedule
        if alpha_schedule == "static":
            self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32))
            return
        beta_0 = BETA_INIT[alpha_schedule] if alpha is None else _beta_of_alpha(alpha_schedule, alpha)
        self.register_buffer("beta_init", torch.tensor(beta_0, dtype=torch.float32))
        self.beta = nn.Parameter(torch.tensor(beta_0, dtype=torch.float32))

    @property
    def learned(self) -> bool:
        return self.schedule != "static"

    def forward(self) -> torch.Tensor:
        if not self.learned:
            return self.alpha
        # eq. 3's domain beta >= beta_0; clamp_min passes the gradient at the boundary (beta_0 itself).
        return alpha_of_beta(self.schedule, torch.clamp_min(self.beta, self.beta_init))

    def value(self) -> float:
        return float(self().detach())

    def extra_repr(self) -> str:
        return f"schedule={self.schedule!r}, alpha={self.value():.4f}"


# -------------------------------------------------------------------------------------------
# the K discriminators


class _Reinit:
    """Stands in for a parametrized module during its class's reset_parameters: the parametrized
    tensors are the originals (so the init writes the real parameters), the rest is the module's."""

    def __init__(self, module: nn.Module, tensors: dict):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_tensors", tensors)

    def __getattr__(self, name):
        return self._tensors[name] if name in self._tensors else getattr(self._module, name)


def fresh_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every submodule that has ``reset_parameters`` re-initialised
    (from the global RNG). A parametrized weight (e.g. spectral norm) is reset through its original
    tensor, since resetting the parametrized view would leave the copy's weights equal to the
    source's, and spectral norm's power-iteration vectors are drawn afresh as its constructor does."""
    if not isinstance(module, nn.Module):
        raise ValueError(f"discriminator: expected an nn.Module, got {type(module).__name__}")
    clone = copy.deepcopy(module)
    for m in [m for m in clone.modules() if callable(getattr(m, "reset_parameters", None))]:
        if not parametrize.is_parametrized(m):
            m.reset_parameters()
            continue
        originals = {name: plist.original for name, plist in m.parametrizations.items()}
        type(m).__bases__[0].reset_parameters(_Reinit(m, originals))  # parametrize subclasses the class
        with torch.no_grad():
            for name, plist in m.parametrizations.items():
                for p in plist:
                    if hasattr(p, "_u") and hasattr(p, "_power_method"):  # spectral norm's u, v
                        p._u.copy_(F.normalize(torch.randn_like(p._u), dim=0, eps=p.eps))
                        p._v.copy_(F.normalize(torch.randn_like(p._v), dim=0, eps=p.eps))
                        p._power_method(p._reshape_weight_to_matrix(originals[name]), 15)
    return clone


class MicroDiscriminators(nn.Module):
    """K independent discriminators (fresh copies of one network, sharing no parameter), in one module
    so that one optimiser and one state_dict cover them. ``forward(x)`` returns every D's logits on x,
    shape (K, N); each copy must return one logit per sample."""

    def __init__(self, discriminator: nn.Module, num_discriminators: int):
        super().__init__()
        k = check_int(num_discriminators, "num_discriminators")
        if k < 2:
            raise ValueError(f"num_discriminators: expected at least 2 (microbatch discrimination), got {k}")
        self.discriminators = nn.ModuleList(fresh_copy(discriminator) for _ in range(k))

    @property
    def num_discriminators(self) -> int:
        return len(self.discriminators)

    def logits(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """D_k's logits on x, shape (N,), checked."""
        out = self.discriminators[k](x)
        if not isinstance(out, torch.Tensor) or out.shape[0] != x.shape[0] or out.numel() != x.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"discriminator: returned {shape} for a batch of {x.shape[0]} samples; "
                "it must return one logit per sample, shape (N,) or (N, 1)"
            )
        return out.reshape(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.logits(k, x) for k in range(self.num_discriminators)])


# -------------------------------------------------------------------------------------------
# eq. 2


def _check(discriminators, real, fake) -> int:
    """The microbatch size m = B / K, after checking the arguments."""
    if not isinstance(discriminators, MicroDiscriminators):
        raise ValueError(
            f"discriminator: expected the MicroDiscriminators of GANLoss('microgan').convert_discriminator, "
            f"got {type(discriminators).__name__}"
        )
    for name, x in (("real", real), ("fake", fake)):
        if x is None:
            continue
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got {type(x).__name__}")
        if x.dim() < 2 or x.shape[0] == 0:
            raise ValueError(f"{name}: expected a non-empty batch of shape (N, ...), got {tuple(x.shape)}")
    if real is not None and real.shape != fake.shape:
        raise ValueError(f"fake: expected the real batch's shape {tuple(real.shape)}, got {tuple(fake.shape)}")
    k, batch = discriminators.num_discriminators, fake.shape[0]
    if batch % k != 0:
        raise ValueError(
            f"num_discriminators: the batch of {batch} samples does not split into {k} microbatches; "
            f"give batches of a multiple of num_discriminators={k}"
        )
    return batch // k


def _alpha_tensor(alpha, like: torch.Tensor) -> torch.Tensor:
    if isinstance(alpha, torch.Tensor):
        if alpha.numel() != 1 or not alpha.is_floating_point():
            raise ValueError(f"alpha: expected a floating-point scalar tensor, got shape {tuple(alpha.shape)}")
        if not bool(torch.isfinite(alpha.detach()).all()):
            raise ValueError("alpha: expected a finite value, got NaN or infinity")
        return alpha.reshape(()).to(like.dtype)
    value = check_real(alpha, "alpha")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha!r}")
    return like.new_tensor(value)


def microbatch_logits(
    discriminators: MicroDiscriminators, real: torch.Tensor | None, fake: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """D_k on its real microbatch, (K, m) (None when ``real`` is None), and on the whole fake batch,
    (K, B): column block k of row k is D_k's own microbatch, the rest the others' fakes."""
    m = _check(discriminators, real, fake)
    k = discriminators.num_discriminators
    logits_fake = discriminators(fake)
    if real is None:
        return None, logits_fake
    logits_real = torch.stack([discriminators.logits(i, real[i * m : (i + 1) * m]) for i in range(k)])
    return logits_real, logits_fake


def _fake_terms(logits_fake: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per D: the mean of -log(1 - D_k(G(z_k))) over its own microbatch and of -log D_k(G(z_-k)) over
    the other microbatches, each (K,)."""
    k, batch = logits_fake.shape
    flat = logits_fake.reshape(-1)
    # One set per sample: the Bernoulli KL to a 0/1 target is the binary cross-entropy.
    to_zero = bernoulli_kl_loss(flat, 0.0, "mbgan", flat.shape[0], reduction="none").view(k, batch)
    to_one = batch_generator_loss(flat, "mbgan", flat.shape[0], reduction="none").view(k, batch)
    own = torch.zeros(k, batch, dtype=torch.bool, device=flat.device)
    for i in range(k):
        own[i, i * m : (i + 1) * m] = True
    own_term = (to_zero * own).sum(1) / m
    others_term = (to_one * ~own).sum(1) / (batch - m)
    return own_term, others_term


def discriminator_loss(
    discriminators: MicroDiscriminators, real: torch.Tensor, fake: torch.Tensor, alpha, real_target: float = 1.0
) -> torch.Tensor:
    """-sum_k V(D_k, G) of eq. 2 (the K discriminators minimise it): for each D_k, the binary
    cross-entropy of its real microbatch to 1, of its own fake microbatch to 0 and, weighted by
    alpha, of the other microbatches' fakes to 1. ``alpha``: a float in [0, 1] or a scalar tensor
    (detached here: D does not learn alpha). Detach ``fake`` for D's step. ``real_target``: 0.9 for
    one-sided label smoothing of the real microbatch (the Bernoulli KL to B(0.9): the same gradient as
    the cross-entropy)."""
    m = _check(discriminators, real, fake)
    real_target = check_real(real_target, "real_target")
    if not 0.0 < real_target <= 1.0:
        raise ValueError(f"real_target: expected a value in (0, 1], got {real_target!r}")
    logits_real, logits_fake = microbatch_logits(discriminators, real, fake)
    alpha = _alpha_tensor(alpha, logits_fake).detach()
    flat = logits_real.reshape(-1)
    real_term = bernoulli_kl_loss(flat, real_target, "mbgan", flat.shape[0], reduction="none")
    real_term = real_term.view_as(logits_real).mean(1)
    own_term, others_term = _fake_terms(logits_fake, m)
    return (real_term + own_term + alpha * others_term).sum()


def generator_loss(discriminators: MicroDiscriminators, fake: torch.Tensor, alpha) -> torch.Tensor:
    """G's side of eq. 2, the fake terms of sum_k V(D_k, G) (G minimises it; Algorithm 1):
    sum_k E[log(1 - D_k(G(z_k)))] + alpha * E[log D_k(G(z_-k))]. ``alpha``: a float or a scalar
    tensor; when it is f(beta) with beta a parameter of G, the gradient reaches beta."""
    m = _check(discriminators, None, fake)
    _, logits_fake = microbatch_logits(discriminators, None, fake)
    alpha = _alpha_tensor(alpha, logits_fake)
    own_term, others_term = _fake_terms(logits_fake, m)
    return -(own_term + alpha * others_term).sum()


# -------------------------------------------------------------------------------------------
# section 4's metrics


def intra_frechet_distance(features: torch.Tensor, num_subsets: int = 2, generator: torch.Generator | None = None):
    """Intra FID (section 4.1) on feature rows of generated samples: the samples are shuffled and
    split into ``num_subsets`` equal parts and the Fréchet distance is averaged over all pairs of
    parts. ``num_subsets=2`` is the paper's definition (two random subsets); with K, the parts are
    distributed as the K microbatches of a batch (its noise is i.i.d.)."""
    from .image_metrics import frechet_distance

    parts = check_int(num_subsets, "num_subsets")
    if parts < 2:
        raise ValueError(f"num_subsets: expected at least 2, got {parts}")
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        raise ValueError(f"features: expected a 2-D tensor (samples, features), got {type(features).__name__}")
    size = features.shape[0] // parts
    if size < 2:
        raise ValueError(f"features: {features.shape[0]} rows do not give {parts} subsets of at least 2 samples")
    if not torch.isfinite(features).all():
        raise ValueError("features: contains NaN or infinite values")
    order = torch.randperm(features.shape[0], generator=generator)[: size * parts]
    chunks = features[order].view(parts, size, -1)
    values = [frechet_distance(chunks[i], chunks[j]) for i in range(parts) for j in range(i + 1, parts)]
    return sum(values) / len(values)


class FDTracker:
    """Section 4's FD curves for an image run of the Trainer: every ``every`` generator steps it
    draws ``num_samples`` generated images (fixed noise), takes the digit classifier's features and
    records the Intra FID (two random halves) and the FD to real training images (fixed reference
    features). ``summary()``: cumulative Intra FID (their sum, section 4.2), mean and minimum FD
    (section 4.3). Costs one classifier pass over ``num_samples`` images per evaluation."""

    def __init__(self, trainer, every: int = 100, num_samples: int = 1000, seed: int = 0):
        from .digit_classifier import load_digit_classifier
        from .image_metrics import channel_features

        if not getattr(trainer.config, "is_image", False):
            raise ValueError("trainer: FDTracker needs an image dataset (digits, stacked-digits)")
        self.every = check_int(every, "every")
        self.num_samples = check_int(num_samples, "num_samples")
        if self.num_samples < 4:
            raise ValueError(f"num_samples: expected at least 4, got {num_samples}")
        self.trainer = trainer
        self.classifier = load_digit_classifier()
        self._features = channel_features
        real = trainer.dataset.sample(self.num_samples, torch.Generator().manual_seed(seed + 1))
        self.reference = channel_features(self.classifier, real)
        self.seed = seed
        self.records: dict[str, list[float]] = {"step": [], "intra_fd": [], "fd": []}

    def evaluate(self) -> None:
        from .image_metrics import frechet_distance

        samples = self.trainer.sample(self.num_samples, seed=self.seed + 2)
        features = self._features(self.classifier, samples)
        self.records["step"].append(self.trainer.step)
        self.records["intra_fd"].append(
            intra_frechet_distance(features, 2, torch.Generator().manual_seed(self.seed + 3))
        )
        self.records["fd"].append(frechet_distance(features, self.reference))

    def train(self, steps: int | None = None) -> dict:
        """Trains to ``steps`` (default: the config's), evaluating every ``every`` steps and at the end."""
        total = self.trainer.config.steps if steps is None else check_int(steps, "steps")
        while self.trainer.step < total:
            target = min(total, (self.trainer.step // self.every + 1) * self.every)
            self.trainer.train(steps=target, progress=False)
            self.evaluate()
        return self.summary()

    def summary(self) -> dict:
        if not self.records["step"]:
            raise ValueError("FDTracker: no evaluation recorded yet (call train or evaluate)")
        fd = self.records["fd"]
        return {
            "cumulative_intra_fd": sum(self.records["intra_fd"]),
            "mean_fd": sum(fd) / len(fd),
            "min_fd": min(fd),
            **{key: list(values) for key, values in self.records.items()},
        }


# -------------------------------------------------------------------------------------------
# the toy experiment (section 3.1.1): static alpha on ring8


def _alpha_records(folder: str) -> list[dict]:
    """The runs under ``folder``, with their alpha as a key ("-" for a baseline method)."""
    from .results import load_records

    records = load_records(folder)
    for record in records:
        config = record["config"]
        if record["method"] != "microgan":
            record["alpha"] = "-"
        else:  # a static alpha's value, or a learned schedule's name
            record["alpha"] = config["alpha"] if config["alpha_schedule"] == "static" else config["alpha_schedule"]
    return records


def main(argv: list[str] | None = None) -> int:
    """Static-alpha sweep of microgan (one run at a time, seed-major; one JSON per run under
    <out>/<dataset>/alpha-<a>/seed<k>.json, finished runs skipped), then the table over seeds with
    the dataset's null rows. On an image dataset every run also records section 4's curves (Intra FD
    and FD every --fd-every steps) and a second table gives their cumulative Intra FD, mean and min FD."""
    import argparse
    import os

    from .image_datasets import IMAGE_DATASETS
    from .results import aggregate, format_table, null_records
    from .sweep import Run, train_run
    from .trainer import PRESETS, TrainConfig, preset_values

    p = argparse.ArgumentParser(prog="python -m batchgan_ext.train.microgan", description=main.__doc__)
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--dataset", default="ring8")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    p.add_argument("--alphas", default="0,0.25,0.5,0.75", help="comma-separated static alphas")
    p.add_argument("--learned", default="", help="comma-separated learned schedules (sigmoid,softsign,tanh)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--num-discriminators", type=int, default=8, help="K (the paper's toy: 8)")
    p.add_argument("--steps", type=int, default=None, help="overrides the preset's generator steps")
    p.add_argument("--batch-size", type=int, default=None, help="overrides the preset's batch size")
    p.add_argument("--checkpoints", default="/tmp/microgan-checkpoints", help="checkpoint folder (not the repo)")
    p.add_argument("--baseline", default=None, help="also train this method (e.g. standard) with the same budget")
    p.add_argument(
        "--fd-every",
        type=int,
        default=None,
        help="image datasets: section 4's Intra FD and FD every this many steps (default 250; 0: off)",
    )
    p.add_argument("--fd-samples", type=int, default=1000, help="generated images per section 4 evaluation")
    p.add_argument("--table-only", action="store_true", help="print the table of the runs already written")
    args = p.parse_args(argv)
    image = args.dataset in IMAGE_DATASETS
    fd_every = (250 if image else 0) if args.fd_every is None else args.fd_every
    if fd_every and not image:
        p.error(f"--fd-every: section 4's FD curves need an image dataset ({', '.join(IMAGE_DATASETS)})")
    torch.set_num_threads(1)
    alphas: list = [float(a) for a in args.alphas.split(",") if a.strip()]
    alphas += [s.strip() for s in args.learned.split(",") if s.strip()]  # alpha from the paper's beta_0
    if not args.table_only:
        for seed in range(args.seeds):
            for alpha in alphas + ([None] if args.baseline else []):
                values = dict(preset_values(args.preset, args.dataset), method="microgan", seed=seed)
                values.update(num_discriminators=args.num_discriminators, alpha=alpha, alpha_schedule="static")
                if isinstance(alpha, str):
                    values.update(alpha=None, alpha_schedule=alpha)
                if alpha is None:  # the baseline: the same budget, its own defaults otherwise
                    values = dict(preset_values(args.preset, args.dataset), method=args.baseline, seed=seed)
                for name in ("steps", "batch_size"):
                    if getattr(args, name) is not None:
                        values[name] = getattr(args, name)
                config = TrainConfig(**values)
                config.validate()
                name = args.baseline if alpha is None else f"alpha-{alpha if isinstance(alpha, str) else f'{alpha:g}'}"
                run = Run(
                    config,
                    os.path.join(args.out, args.dataset, name, f"seed{seed}.json"),
                    os.path.join(args.checkpoints, f"{args.dataset}-{name}-seed{seed}.pt"),
                    f"{args.dataset}/{name}/seed{seed}",
                )
                if os.path.exists(run.result_path):
                    continue
                record = train_run(run, fd_every=fd_every, fd_samples=args.fd_samples)
                print(f"{run.label}: {_run_summary(record)}, {record['wall_seconds']:.0f} s", flush=True)
    records = _alpha_records(os.path.join(args.out, args.dataset))
    if not records:
        raise SystemExit(f"out: no microgan runs under {os.path.join(args.out, args.dataset)}")
    rows = aggregate(records, keys=("dataset", "method", "alpha"))
    nulls = null_records(args.dataset, records[0]["config"]["eval_samples"])
    print(format_table(rows, nulls, markdown=True, extra=("alpha",)))
    if any("cumulative_intra_fd" in r for r in records):
        print()
        print(format_section4_table(records))
    for r in records:
        print(f"{r['method']} alpha {r['alpha']} seed {r['seed']}: {_run_summary(r)}")
    return 0


def _run_summary(record: dict) -> str:
    if "modes_covered_strict" in record:  # 2D
        return (
            f"{record['modes_covered_strict']}/{record['num_modes']} strict, "
            f"{100 * record['high_quality_fraction']:.1f}% HQ, reverse KL {record['reverse_kl']}"
        )
    text = f"{record['modes_covered']}/{record['num_modes']} modes, KL {record['reverse_kl']:.3f}"
    text += f", FD {record['frechet_distance']:.1f}"
    if "cumulative_intra_fd" in record:
        text += f", cumulative Intra FD {record['cumulative_intra_fd']:.1f}, min FD {record['min_fd']:.1f}"
    return text


SECTION4_COLUMNS = (
    ("cumulative_intra_fd", "cumulative Intra FD"),
    ("mean_fd", "mean FD"),
    ("min_fd", "min FD"),
)


def format_section4_table(records: list[dict]) -> str:
    """Section 4's metrics over training (Intra FD summed over the evaluations, mean and minimum FD to
    real images), mean ± s.e. over the seeds of each (method, alpha), as a markdown table."""
    from .results import mean_se

    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if "cumulative_intra_fd" in r:
            groups.setdefault((r["dataset"], r["method"], r["alpha"]), []).append(r)
    first = next(iter(groups.values()))[0]
    curve = first["fd_curve"]["step"]
    header = ["dataset", "method", "alpha", "runs", *(title for _, title in SECTION4_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for (dataset, method, alpha), group in groups.items():
        cells = [dataset, method, str(alpha), str(len(group))]
        for key, _ in SECTION4_COLUMNS:
            mean, se = mean_se([float(r[key]) for r in group])
            cells.append(f"{mean:.1f}" if se is None else f"{mean:.1f} ± {se:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"(evaluated at steps {curve[0]}-{curve[-1]}, every {curve[1] - curve[0] if len(curve) > 1 else curve[0]}, "
        f"{first['fd_samples']} generated images each, the digit classifier's features)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
