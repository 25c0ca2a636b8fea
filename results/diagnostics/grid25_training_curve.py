"""Where a grid25 run's samples lie over training: the high-quality fraction every few thousand steps.

Trains one method at the `results` preset's grid25 configuration and, every `--every` generator steps,
scores 2,500 samples with the package's `mode_metrics` and sorts them by their distance to the nearest
mode in units of the modes' σ (≤ 3 is VEEGAN's high quality; > 10 are samples between modes). It also
scores the generator with batch norm in training mode (statistics of the 2,500 samples themselves) to
tell a bad running average apart from a bad generator. Rows go to `--out` (JSON) as they come.

    .venv/bin/python results/diagnostics/grid25_training_curve.py --method mbgan --seed 11 \
        --out results/diagnostics/grid25-training-curves/mbgan-seed11.json [--steps 20000] [--lr-decay 0.75]

Every option left out keeps the `results` preset's value. The files in grid25-training-curves/ are the
README's "What was tried" rows on seeds kept apart from the table (10-12) and its seed-1 diagnosis.
"""

import argparse
import copy
import json

import torch

from batchgan_ext.train.metrics import mode_metrics
from batchgan_ext.train.trainer import TrainConfig, Trainer, preset_values

# Upper edges (in σ) of the distance bins; the last bin is everything beyond 10σ.
DISTANCE_EDGES = (3.0, 5.0, 10.0)


def distance_fractions(samples: torch.Tensor, means: torch.Tensor, std: float) -> tuple[list[float], float]:
    """Fractions of samples within each bin of nearest-mode distance (σ units), and the median distance."""
    distance = torch.cdist(samples.double(), means.double()).min(dim=1).values / std
    lower = float("-inf")
    fractions = []
    for upper in DISTANCE_EDGES:
        fractions.append(float(((distance > lower) & (distance <= upper)).double().mean()))
        lower = upper
    fractions.append(float((distance > lower).double().mean()))
    return fractions, float(distance.median())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="mbgan")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr-decay", type=float, default=None)
    p.add_argument("--every", type=int, default=2000)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    overrides = {name: getattr(args, name) for name in ("steps", "lr_decay") if getattr(args, name) is not None}
    config = TrainConfig(**{**preset_values("results", "grid25"), **overrides}, method=args.method, seed=args.seed)
    trainer = Trainer(config)
    data = trainer.dataset
    record = dict(
        config=dict(method=args.method, seed=args.seed, preset="results", dataset="grid25", **overrides),
        torch_version=torch.__version__,
        distance_edges_sigma=list(DISTANCE_EDGES),
        rows=[],
    )
    while trainer.step < config.steps:
        trainer.train(steps=min(config.steps, trainer.step + args.every), progress=False)
        samples = trainer.sample(2500)
        generator = copy.deepcopy(trainer.generator).train()
        with torch.no_grad():
            noise = torch.randn(2500, config.latent_dim, generator=torch.Generator().manual_seed(12345))
            samples_train_bn = generator(noise)
        scores = mode_metrics(samples, data.means, data.std)
        fractions, median = distance_fractions(samples, data.means, data.std)
        row = dict(
            step=trainer.step,
            high_quality_fraction=scores["high_quality_fraction"],
            high_quality_fraction_train_mode_bn=mode_metrics(samples_train_bn, data.means, data.std)[
                "high_quality_fraction"
            ],
            modes_covered_strict=scores["modes_covered_strict"],
            reverse_kl=scores["reverse_kl"],
            distance_fractions=fractions,
            median_distance_sigma=median,
            loss_d=trainer.history["loss_d"][-1],
        )
        record["rows"].append(row)
        print(json.dumps(row), flush=True)
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
