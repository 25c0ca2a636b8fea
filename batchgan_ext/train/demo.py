"""The main job's demo: every method on grid25 and ring8 with the same budget and seed, two runs at
a time, a table with the null rows, and plots. It is the `results` preset's table made small
enough for the main job (the `demo` preset: fewer generator steps, one seed), so its numbers are a
preview of `python -m batchgan_ext.train.sweep --preset results`, not the results.

    python -m batchgan_ext.train.demo --out outputs/demo [--preset demo] [--seed 0] [--jobs 2]
"""

import argparse
import json
import os
import shutil
import sys
import time

import torch

from .datasets import DATASETS, make_dataset
from .objectives import COMPARED_METHODS, METHODS
from .plots import plot_losses, plot_samples, require_plotting
from .results import aggregate, format_table, null_records
from .sweep import parse_choices, plan_runs, run_sweep, samples_path
from .trainer import PRESETS


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
    p.add_argument("--methods", default=",".join(COMPARED_METHODS))
    p.add_argument("--steps", type=int, default=None, help="overrides the preset's generator steps")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once, one CPU thread each (default 2)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        datasets = parse_choices(args.datasets, sorted(DATASETS), "datasets")
        methods = parse_choices(args.methods, METHODS, "methods")
        if args.jobs < 1:
            raise ValueError("--jobs: expected a positive integer")
        overrides = {} if args.steps is None else {"steps": args.steps}
        runs = plan_runs(args.preset, args.out, datasets, methods, [args.seed], None, overrides)
    except ValueError as error:
        p.error(str(error))
    require_plotting()
    start = time.perf_counter()
    config = runs[0].config
    n_disc = ", ".join(f"{d} {n}" for d, n in {r.config.dataset: r.config.n_disc for r in runs}.items())
    print(
        f"2D demo: {len(runs)} runs, preset {args.preset}: {config.steps} generator steps, n_disc ({n_disc}), "
        f"batch {config.batch_size}, sets of {config.set_size}, {config.hidden}-unit networks; {args.jobs} at a time",
        flush=True,
    )
    # A fresh demo every time: the previous one's results are not reused.
    for dataset in datasets:
        shutil.rmtree(os.path.join(args.out, dataset), ignore_errors=True)
    run_sweep(runs, jobs=args.jobs, progress=not args.no_progress, keep_samples=True)
    records = []
    for run in runs:
        with open(run.result_path) as f:
            records.append(json.load(f))
    nulls = [row for dataset in datasets for row in null_records(dataset, config.eval_samples)]
    rows = aggregate(records)
    for dataset in datasets:
        title = f"{dataset}: preset {args.preset}, {config.steps} generator steps, seed {args.seed}"
        chosen = [(run, r) for run, r in zip(runs, records) if r["dataset"] == dataset]
        panels = {r["method"]: torch.load(samples_path(run), weights_only=True) for run, r in chosen}
        plot_samples(os.path.join(args.out, dataset, "samples.png"), panels, make_dataset(dataset).means, title)
        plot_losses(
            os.path.join(args.out, dataset, "losses.png"), {r["method"]: r["history"] for _, r in chosen}, title
        )
    print(f"\n## 2D mode-dropping demo (preset {args.preset}, one seed: {args.seed})")
    print(format_table(rows, nulls))
    if args.preset != "results":
        print(
            f"A preview at the {args.preset} preset's budget with one seed, not the results: the README's table "
            "comes from `python -m batchgan_ext.train.sweep --preset results` (3 seeds, the full budget)."
        )
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"runs": records, "null_rows": nulls, "table": rows}, f, indent=1)
    print(f"plots: {args.out}/<dataset>/samples.png and losses.png; total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
