"""Command line of the training layer:

    python -m batchgan_ext.train --dataset grid25 --method mbgan --out outputs/grid25
    python -m batchgan_ext.train --dataset ring8 --method standard,minibatch,bgan,mbgan --out outputs/ring8
    batchgan-train ...   (the same, as a console script)

Trains each method with the same configuration and seed, then writes into --out:
metrics.json (per method: modes covered, % high-quality samples, KL to uniform, wall time),
samples.png (generated samples over the mode centres, one panel per method) and losses.png.
With --checkpoint-every N each run saves <out>/<method>.pt every N generator steps (atomically: a crash
mid-save keeps the previous file), and --resume continues from it. Plots need matplotlib and the progress
bar tqdm: pip install 'batchgan_ext[train]'.
"""

import argparse
import dataclasses
import json
import os
import sys

import torch

from ._extras import require
from .datasets import DATASETS
from .networks import METHODS
from .plots import plot_losses, plot_samples, require_plotting
from .trainer import POSITIVE_INT_FIELDS, PRESETS, TrainConfig, Trainer

__all__ = ["main", "run_methods", "format_table"]


def run_methods(
    base: TrainConfig,
    methods: list[str],
    out_dir: str,
    progress: bool = True,
    checkpoint_every: int = 0,
    resume: bool = False,
) -> dict[str, dict]:
    # The plots come after training: check their dependency (and the progress bar's) before it starts.
    require_plotting()
    if progress:
        require("tqdm", "the progress bar (--no-progress runs without it)")
    os.makedirs(out_dir, exist_ok=True)
    results: dict[str, dict] = {}
    samples, histories = {}, {}
    for method in methods:
        config = dataclasses.replace(base, method=method)
        ckpt = os.path.join(out_dir, f"{method}.pt") if checkpoint_every or resume else None
        if resume and ckpt and os.path.exists(ckpt):
            trainer = Trainer.from_checkpoint(ckpt)
        else:
            trainer = Trainer(config)
        trainer.train(progress=progress, checkpoint_path=ckpt, checkpoint_every=checkpoint_every)
        metrics = trainer.evaluate()
        metrics["wall_seconds"] = trainer.train_seconds
        metrics["config"] = dataclasses.asdict(config)
        results[method] = metrics
        samples[method] = trainer.sample(config.eval_samples)
        histories[method] = trainer.history
        print(
            f"{method}/{config.dataset}: {metrics['modes_covered']}/{metrics['num_modes']} modes, "
            f"{100 * metrics['high_quality_fraction']:.1f}% high quality, "
            f"KL {_fmt_kl(metrics['kl_to_uniform'])}, {metrics['wall_seconds']:.0f} s",
            flush=True,
        )
    dataset = Trainer(dataclasses.replace(base, method=methods[0])).dataset
    title = f"{base.dataset}: {base.steps} generator steps, n_disc={base.n_disc}, seed {base.seed}"
    plot_samples(os.path.join(out_dir, "samples.png"), samples, dataset.means, title)
    plot_losses(os.path.join(out_dir, "losses.png"), histories, title)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def _fmt_kl(kl: float | None) -> str:
    return "-" if kl is None else f"{kl:.3f}"


def format_table(rows: list[dict]) -> str:
    header = ["dataset", "method", "modes covered", "% high quality", "KL to uniform", "wall time"]
    lines = [
        [
            r["dataset"],
            r["method"],
            f"{r['modes_covered']}/{r['num_modes']}",
            f"{100 * r['high_quality_fraction']:.1f}",
            _fmt_kl(r["kl_to_uniform"]),
            f"{r['wall_seconds']:.0f} s",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


# The TrainConfig fields that options override; latent_dim and log_every have no option and keep their defaults.
INT_OPTIONS = tuple(name for name in POSITIVE_INT_FIELDS if name not in ("latent_dim", "log_every"))
FLOAT_OPTIONS = {
    "gamma": "batch smoothing gamma (default 0.5)",
    "lr": "Adam learning rate (the preset's: 2e-4 demo, 1e-3 paper)",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m batchgan_ext.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="grid25", choices=sorted(DATASETS))
    p.add_argument("--method", default="mbgan", help=f"one or more of {','.join(METHODS)}, comma-separated")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="budget and network size (default: demo)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
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
    values = dict(PRESETS[args.preset])
    values.update(dataset=args.dataset, seed=args.seed)
    for name in (*INT_OPTIONS, *FLOAT_OPTIONS):
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
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        results = run_methods(
            base,
            methods,
            args.out,
            progress=not args.no_progress,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
        )
    finally:
        torch.set_num_threads(previous_threads)
    rows = [dict(dataset=base.dataset, method=m, **r) for m, r in results.items()]
    print(format_table(rows))
    print(f"wrote {os.path.join(args.out, 'metrics.json')}, samples.png, losses.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
