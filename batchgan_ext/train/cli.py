"""Command line of the training layer:

    python -m batchgan_ext.train --dataset grid25 --method mbgan --out outputs/grid25
    python -m batchgan_ext.train --dataset ring8 --method standard,pacgan,bgan --seeds 3 --out outputs/ring8
    python -m batchgan_ext.train --dataset stacked-digits --method standard,mbgan --out outputs/stacked
    batchgan-train ...   (the same, as a console script)
    torchrun --nproc_per_node 2 -m batchgan_ext.train ...   (data-parallel: each process trains on its
                                                            shard of every batch, DDP; rank 0 writes)

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
import datetime
import json
import os
import sys

import torch
import torch.distributed as dist

from ._extras import require
from .image_datasets import IMAGE_DATASETS
from .microgan import ALPHA_SCHEDULES
from .networks import METHODS
from .plots import plot_alpha, plot_image_samples, plot_losses, plot_samples, require_plotting
from .rectangles import RECTANGLE_DATASETS
from .results import aggregate, format_table, null_records
from .trainer import (
    POSITIVE_INT_FIELDS,
    PRESETS,
    TRAINING_DATASETS,
    TrainConfig,
    Trainer,
    make_training_dataset,
    preset_values,
)

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
    the plots into `out_dir`; returns what metrics.json holds: {"runs", "null_rows", "table",
    "world_size"}. Under torchrun every rank trains and rank 0 alone evaluates and writes (the other
    ranks return None)."""
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
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
            if rank != 0:
                continue
            metrics = trainer.evaluate()
            record = dict(dataset=config.dataset, method=method, seed=seed, **metrics)
            record.update(
                wall_seconds=trainer.train_seconds, world_size=trainer.world_size, config=dataclasses.asdict(config)
            )
            records.append(record)
            if seed == seeds[0]:
                samples[method] = trainer.sample(config.eval_samples)
                histories[method] = trainer.history
            print(f"{label}: {describe_metrics(metrics)}, {trainer.train_seconds:.0f} s", flush=True)
    if rank != 0:
        return None
    nulls = null_records(base.dataset, base.eval_samples)
    title = f"{base.dataset}: {base.steps} generator steps, n_disc={base.n_disc}, seed {seeds[0]}"
    if base.is_image:
        plot_image_samples(os.path.join(out_dir, "samples.png"), samples, title)
    else:
        means = make_training_dataset(base.dataset).means
        plot_samples(os.path.join(out_dir, "samples.png"), samples, means, title)
    plot_losses(os.path.join(out_dir, "losses.png"), histories, title)
    if any("alpha" in h for h in histories.values()):  # microgan: alpha over training
        plot_alpha(os.path.join(out_dir, "alpha.png"), histories, title)
    world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    result = {"runs": records, "null_rows": nulls, "table": aggregate(records), "world_size": world_size}
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def describe_metrics(metrics: dict) -> str:
    """One line of a run's metrics (2D or image)."""
    if "correct_fraction" in metrics:  # the rectangles (rectangles.rectangle_metrics)
        return (
            f"{100 * metrics['correct_fraction']:.1f}% correct ({metrics['num_rectangles']} rectangles), "
            f"{100 * metrics['neighbour_fraction']:.1f}% of training images with a generated neighbour"
        )
    kl = "-" if metrics["reverse_kl"] is None else f"{metrics['reverse_kl']:.3f}"
    if "frechet_distance" in metrics:
        return (
            f"{metrics['modes_covered']}/{metrics['num_modes']} modes, KL to uniform {kl}, "
            f"classifier FD {metrics['frechet_distance']:.1f}, inception score {metrics['inception_score']:.2f}"
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
    "alpha": "microgan: the static alpha in [0, 1], or a learned schedule's initial alpha (default: the paper's)",
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
    p.add_argument("--one-sided-smoothing", action="store_true", help="D's real target 0.9 (Salimans et al. 3.4)")
    p.add_argument("--feature-matching", action="store_true", help="G's loss: feature matching on D's features (3.1)")
    p.add_argument(
        "--historical-averaging", type=float, default=None, help="weight of the historical averaging penalty (3.3)"
    )
    p.add_argument(
        "--alpha-schedule", default=None, choices=ALPHA_SCHEDULES, help="microgan: alpha's schedule (default sigmoid)"
    )
    p.add_argument("--sample-correction", action="store_true", help="SC: no correct fakes in D's negatives")
    p.add_argument(
        "--combination-regularization", action="store_true", help="PCR: pixel-wise AND/OR images as D negatives"
    )
    p.add_argument("--combination-ratio", type=float, default=None, help="PCR: their fraction of D's fakes (0.5)")
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
    images = args.dataset in IMAGE_DATASETS or args.dataset in RECTANGLE_DATASETS
    preset = args.preset or ("image-demo" if images else "demo")
    values = preset_values(preset, args.dataset)
    values.update(seed=args.seed)
    for name in (*INT_OPTIONS, *FLOAT_OPTIONS, "packing", "historical_averaging", "alpha_schedule"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    values.update(one_sided_smoothing=args.one_sided_smoothing, feature_matching=args.feature_matching)
    values.update(sample_correction=args.sample_correction, combination_regularization=args.combination_regularization)
    if args.combination_ratio is not None:
        values["combination_ratio"] = args.combination_ratio
    return TrainConfig(**values)


# How long a rank waits in a collective for the others: rank 0 evaluates between runs while the others
# start the next one. A rank that dies closes its connections, so the others fail at once, not after this.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


def _init_process_group_from_env() -> bool:
    """Under torchrun (WORLD_SIZE > 1 in the environment): joins the process group, gloo on CPU
    (NCCL for CUDA tensors is the Trainer's device's business: this CLI trains on the CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
    return True


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
    started_process_group = _init_process_group_from_env()
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
        if started_process_group:
            dist.destroy_process_group()
    if results is None:  # a rank other than 0 under torchrun
        return 0
    print(format_table(results["table"], results["null_rows"]))
    print(f"wrote {os.path.join(args.out, 'metrics.json')}, samples.png, losses.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
