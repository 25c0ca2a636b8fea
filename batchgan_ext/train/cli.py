"""Command line of the training layer:

    python -m batchgan_ext.train --dataset grid25 --method mbgan --out outputs/grid25
    python -m batchgan_ext.train --dataset ring8 --method standard,pacgan,bgan --seeds 3 --out outputs/ring8
    python -m batchgan_ext.train --dataset stacked-digits --method standard,mbgan --out outputs/stacked
    batchgan-train ...   (the same, as a console script)

Trains each method with the same configuration for each of --seeds seeds (--seed, --seed + 1, ...), then
writes into --out: metrics.json (every run's record: modes covered by the VEEGAN rule and strictly, % high
quality samples, reverse KL, wall time; for the digit images modes covered of 10 or 1,000, KL to uniform and
the classifier Fréchet distance; the null rows; the table's rows, mean +- standard error over seeds),
samples.png (generated samples over the mode centres, or a grid of generated images, one panel per method,
first seed) and losses.png.
With --checkpoint-every N each run saves <out>/<method>[-seed<k>].pt every N generator steps (atomically: a
crash mid-save keeps the previous file), and --resume continues from it. Plots need matplotlib and the
progress bar tqdm: pip install 'batchgan_ext[train]'. Whole sweeps over methods, seeds and datasets, two at
a time and resumable: python -m batchgan_ext.train.sweep.
"""

import argparse
import dataclasses
import json
import os
import sys

import torch

from ._extras import require
from .image_datasets import IMAGE_DATASETS
from .networks import METHODS
from .plots import plot_image_samples, plot_losses, plot_samples, require_plotting
from .results import aggregate, format_table, null_records
from .trainer import POSITIVE_INT_FIELDS, PRESETS, TRAINING_DATASETS, TrainConfig, Trainer

__all__ = ["main", "run_methods"]


def _checkpoint_path(out_dir: str, method: str, seed: int, seeds: list[int]) -> str:
    return os.path.join(out_dir, f"{method}.pt" if len(seeds) == 1 else f"{method}-seed{seed}.pt")


def run_methods(
    base: TrainConfig,
    methods: list[str],
    out_dir: str,
    seeds: list[int] | None = None,
    progress: bool = True,
    checkpoint_every: int = 0,
    resume: bool = False,
) -> dict:
    """Trains every method for every seed with `base`'s configuration and writes metrics.json and
    the plots into `out_dir`; returns what metrics.json holds: {"runs", "null_rows", "table"}."""
    # The plots come after training: check their dependency (and the progress bar's) before it starts.
    require_plotting()
    if progress:
        require("tqdm", "the progress bar (--no-progress runs without it)")
    seeds = [base.seed] if seeds is None else seeds
    os.makedirs(out_dir, exist_ok=True)
    records: list[dict] = []
    samples, histories = {}, {}
    for seed in seeds:
        for method in methods:
            config = dataclasses.replace(base, method=method, seed=seed)
            ckpt = _checkpoint_path(out_dir, method, seed, seeds) if checkpoint_every or resume else None
            if resume and ckpt and os.path.exists(ckpt):
                trainer = Trainer.from_checkpoint(ckpt)
            else:
                trainer = Trainer(config)
            label = f"{method}/{config.dataset}/seed {seed}"
            trainer.train(progress=progress, checkpoint_path=ckpt, checkpoint_every=checkpoint_every, description=label)
            metrics = trainer.evaluate()
            record = dict(dataset=config.dataset, method=method, seed=seed, **metrics)
            record.update(wall_seconds=trainer.train_seconds, config=dataclasses.asdict(config))
            records.append(record)
            if seed == seeds[0]:
                samples[method] = trainer.sample(config.eval_samples)
                histories[method] = trainer.history
            print(f"{label}: {describe_metrics(metrics)}, {trainer.train_seconds:.0f} s", flush=True)
    nulls = null_records(base.dataset, base.eval_samples)
    title = f"{base.dataset}: {base.steps} generator steps, n_disc={base.n_disc}, seed {seeds[0]}"
    if base.is_image:
        plot_image_samples(os.path.join(out_dir, "samples.png"), samples, title)
    else:
        means = Trainer(dataclasses.replace(base, method=methods[0])).dataset.means
        plot_samples(os.path.join(out_dir, "samples.png"), samples, means, title)
    plot_losses(os.path.join(out_dir, "losses.png"), histories, title)
    result = {"runs": records, "null_rows": nulls, "table": aggregate(records)}
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def describe_metrics(metrics: dict) -> str:
    """One line of a run's metrics (2D or image)."""
    kl = "-" if metrics["reverse_kl"] is None else f"{metrics['reverse_kl']:.3f}"
    if "frechet_distance" in metrics:
        return (
            f"{metrics['modes_covered']}/{metrics['num_modes']} modes, KL to uniform {kl}, "
            f"classifier FD {metrics['frechet_distance']:.1f}"
        )
    return (
        f"{metrics['modes_covered']}/{metrics['num_modes']} modes (VEEGAN rule), "
        f"{metrics['modes_covered_strict']} strict, "
        f"{100 * metrics['high_quality_fraction']:.1f}% high quality, reverse KL {kl}"
    )


# The TrainConfig fields that options override; latent_dim and log_every have no option and keep their defaults.
INT_OPTIONS = tuple(name for name in POSITIVE_INT_FIELDS if name not in ("latent_dim", "log_every"))
FLOAT_OPTIONS = {
    "gamma": "batch smoothing gamma (default 0.5)",
    "lr": "Adam learning rate",
    "lr_decay": "final fraction of the steps over which the learning rate falls linearly to 0",
    "mixup_alpha": "mixup: Beta(alpha, alpha) weights",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m batchgan_ext.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="grid25", choices=TRAINING_DATASETS)
    p.add_argument("--method", default="mbgan", help=f"one or more of {','.join(METHODS)}, comma-separated")
    p.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="budget and network size (default: demo for the 2D mixtures, image-demo for the digit images)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=1, help="train each method with this many seeds (default 1)")
    p.add_argument(
        "--packing", type=int, default=None, help="pacgan: samples per pack (default: 4 grid25, 2 the others)"
    )
    for name in INT_OPTIONS:
        p.add_argument("--" + name.replace("_", "-"), type=int, default=None, help="overrides the preset")
    for name, help in FLOAT_OPTIONS.items():
        p.add_argument("--" + name, type=float, default=None, help=help)
    p.add_argument("--checkpoint-every", type=int, default=0, help="save <out>/<method>.pt every N generator steps")
    p.add_argument("--resume", action="store_true", help="continue from <out>/<method>.pt where present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: these small networks run fastest single-threaded)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    preset = args.preset or ("image-demo" if args.dataset in IMAGE_DATASETS else "demo")
    values = dict(PRESETS[preset])
    values.update(dataset=args.dataset, seed=args.seed)
    for name in (*INT_OPTIONS, *FLOAT_OPTIONS, "packing"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        parser.error(f"--method: expected one or more of {', '.join(METHODS)}, got {args.method!r}")
    try:
        base = config_from_args(args)
        base.validate()
    except ValueError as e:
        parser.error(str(e))
    if args.threads < 1:
        parser.error("--threads: expected a positive integer")
    if args.seeds < 1:
        parser.error("--seeds: expected a positive integer")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        results = run_methods(
            base,
            methods,
            args.out,
            seeds=list(range(args.seed, args.seed + args.seeds)),
            progress=not args.no_progress,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
        )
    finally:
        torch.set_num_threads(previous_threads)
    print(format_table(results["table"], results["null_rows"]))
    print(f"wrote {os.path.join(args.out, 'metrics.json')}, samples.png, losses.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
