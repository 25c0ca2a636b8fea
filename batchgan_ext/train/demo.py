"""The main job's demo: standard, minibatch, bgan and mbgan on grid25 and ring8 with the same
budget and seed (the `demo` preset unless told otherwise), a table of the results, and plots.

    python -m batchgan_ext.train.demo --out outputs/demo [--preset demo] [--seed 0]
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import torch

from .cli import format_table, run_methods
from .networks import METHODS
from .trainer import PRESETS, TrainConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m batchgan_ext.train.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="outputs/demo")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--datasets", default="grid25,ring8")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--steps", type=int, default=None, help="overrides the preset's generator steps")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, fastest for these sizes)")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    start = time.perf_counter()
    rows = []
    for dataset in args.datasets.split(","):
        config = TrainConfig(dataset=dataset, seed=args.seed, **PRESETS[args.preset])
        if args.steps:
            config = dataclasses.replace(config, steps=args.steps)
        print(
            f"\n== {dataset}: preset {args.preset}, {config.steps} generator steps, n_disc={config.n_disc}, "
            f"batch {config.batch_size}, sets of {config.set_size}, {config.hidden}-unit MLPs",
            flush=True,
        )
        results = run_methods(
            config, args.methods.split(","), os.path.join(args.out, dataset), progress=not args.no_progress
        )
        rows += [dict(dataset=dataset, method=m, **r) for m, r in results.items()]
    print(f"\n## 2D mode-dropping demo (preset {args.preset}, seed {args.seed})")
    print(format_table(rows))
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(rows, f, indent=2)
    print(f"plots: {args.out}/<dataset>/samples.png and losses.png; total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
