"""Sweeps: every method x seed x dataset (and optionally x gamma) of a preset, `--jobs` runs at a
time (one CPU thread each), one progress bar over the whole sweep.

    python -m batchgan_ext.train.sweep --preset results --out results/2d --seeds 3 --jobs 2
    python -m batchgan_ext.train.sweep --preset results --out results/2d-gamma --methods bgan \\
        --datasets grid25 --seeds 1 --gammas 0,0.1,0.2,0.3,0.4,0.5
    python -m batchgan_ext.train.sweep --preset image-results --out results/images --datasets stacked-digits

Each finished run writes <out>/<dataset>/<method>[-gamma<g>]/seed<k>.json (its metrics, config,
wall time, torch version and a thinned loss history); runs whose file exists are skipped, and a run in progress
checkpoints to <out>/checkpoints/ every --checkpoint-every steps, so a sweep killed at any point
(or spread over several sessions) continues where it stopped when started again with the same
arguments. `batchgan-report <out>` (python -m batchgan_ext.train.report) prints the table.
"""

import argparse
import dataclasses
import json
import multiprocessing
import os
import queue as queue_module
import sys

import torch

from ._extras import require
from .objectives import COMPARED_METHODS, METHODS
from .results import write_json
from .trainer import PRESETS, TRAINING_DATASETS, TrainConfig, Trainer, config_matches, preset_values

__all__ = ["Run", "plan_runs", "run_sweep", "samples_path", "train_run", "main"]

HISTORY_POINTS = 100  # loss records kept per result file (enough for a loss-curve plot)


@dataclasses.dataclass(frozen=True)
class Run:
    config: TrainConfig
    result_path: str
    checkpoint_path: str
    label: str


def plan_runs(
    preset: str,
    out: str,
    datasets: list[str],
    methods: list[str],
    seeds: list[int],
    gammas: list[float] | None = None,
    overrides: dict | None = None,
) -> list[Run]:
    """The runs of a sweep, seed-major (every method gets seed 0 before any gets seed 1), so that a
    partial sweep already compares all methods."""
    runs = []
    for seed in seeds:
        for dataset in datasets:
            for method in methods:
                for gamma in gammas if gammas is not None else [None]:
                    values = dict(preset_values(preset, dataset), **(overrides or {}))
                    values.update(method=method, seed=seed)
                    name = method
                    if gamma is not None:
                        values["gamma"] = gamma
                        name = f"{method}-gamma{gamma:g}"
                    config = TrainConfig(**values)
                    config.validate()
                    label = f"{dataset}/{name}/seed{seed}"
                    runs.append(
                        Run(
                            config,
                            os.path.join(out, dataset, name, f"seed{seed}.json"),
                            os.path.join(out, "checkpoints", f"{dataset}-{name}-seed{seed}.pt"),
                            label,
                        )
                    )
    return runs


def _thin(history: dict[str, list[float]], points: int) -> dict[str, list[float]]:
    n = len(history["step"])
    if n <= points:
        return history
    keep = sorted({round(i * (n - 1) / (points - 1)) for i in range(points)})
    return {key: [values[i] for i in keep] for key, values in history.items()}


def _check_existing(run: Run) -> bool:
    """True when the run's result exists; an error when it came from another configuration."""
    if not os.path.exists(run.result_path):
        return False
    with open(run.result_path) as f:
        existing = json.load(f)
    if not config_matches(existing.get("config"), run.config):
        raise ValueError(
            f"out: {run.result_path} was written by a run with another configuration; "
            "remove it or sweep into another --out folder"
        )
    return True


def samples_path(run: Run) -> str:
    """Where :func:`train_run` with ``keep_samples=True`` puts the evaluated samples (for plots)."""
    return run.result_path[: -len(".json")] + ".samples.pt"


def train_run(
    run: Run,
    checkpoint_every: int = 2000,
    report=None,
    report_every: int = 250,
    keep_samples: bool = False,
    fd_every: int = 0,
    fd_samples: int = 1000,
) -> dict:
    """Trains one run (resuming from its checkpoint when there is one), writes its result file and
    removes the checkpoint. `report(n)` is called with the number of generator steps done since the
    last call; `keep_samples` also saves the evaluated samples next to the result (plots).
    `fd_every` > 0 (image datasets): microGAN's section 4 curves (microgan.FDTracker: Intra FD and FD
    to real images every `fd_every` steps on `fd_samples` samples) go into the record, as
    ``fd_curve`` and its summary keys ``cumulative_intra_fd``, ``mean_fd`` and ``min_fd``; training
    then reports every `fd_every` steps (instead of `report_every`), and the curve so far is kept
    beside the checkpoint, so a resumed run continues it."""
    tracker = None
    curve_path = run.checkpoint_path + ".fd.json"
    if os.path.exists(run.checkpoint_path):
        trainer = Trainer.from_checkpoint(run.checkpoint_path)
        if not config_matches(dataclasses.asdict(trainer.config), run.config):
            raise ValueError(f"checkpoint: {run.checkpoint_path} belongs to another configuration")
        if report:
            report(trainer.step)
    else:
        trainer = Trainer(run.config)
    if fd_every > 0:
        from .microgan import FDTracker

        tracker = FDTracker(trainer, fd_every, fd_samples)  # one reference and noise for every run
        if trainer.step > 0:
            with open(curve_path) as f:
                tracker.records = json.load(f)
        report_every = fd_every
    total = run.config.steps
    while trainer.step < total:
        start = trainer.step
        trainer.train(steps=min(total, (start // report_every + 1) * report_every), progress=False)
        if tracker is not None:
            tracker.evaluate()
        if trainer.step % checkpoint_every == 0 and trainer.step < total:
            trainer.save(run.checkpoint_path)
            if tracker is not None:
                write_json(curve_path, tracker.records)
        if report:
            report(trainer.step - start)
    metrics = trainer.evaluate()
    if keep_samples:
        os.makedirs(os.path.dirname(os.path.abspath(run.result_path)), exist_ok=True)
        torch.save(trainer.sample(run.config.eval_samples), samples_path(run))
    section4 = {}
    if tracker is not None:
        summary = tracker.summary()
        section4 = {key: summary[key] for key in ("cumulative_intra_fd", "mean_fd", "min_fd")}
        section4["fd_curve"] = {key: summary[key] for key in ("step", "intra_fd", "fd")}
        section4["fd_samples"] = fd_samples
    record = dict(
        dataset=run.config.dataset,
        method=run.config.method,
        seed=run.config.seed,
        gamma=run.config.gamma,
        **metrics,
        **section4,
        wall_seconds=trainer.train_seconds,
        torch_version=torch.__version__,  # a seed reproduces a run bit for bit on one torch build, not across builds
        config=dataclasses.asdict(run.config),
        history=_thin(trainer.history, HISTORY_POINTS),
    )
    write_json(run.result_path, record)
    for path in (run.checkpoint_path, curve_path):
        if os.path.exists(path):
            os.remove(path)
    return record


def _worker(run: Run, checkpoint_every: int, progress_queue, keep_samples: bool) -> str:
    torch.set_num_threads(1)
    train_run(run, checkpoint_every, report=progress_queue.put, keep_samples=keep_samples)
    return run.label


def run_sweep(
    runs: list[Run], jobs: int = 2, checkpoint_every: int = 2000, progress: bool = True, keep_samples: bool = False
) -> list[str]:
    """Trains the runs whose result is missing, `jobs` at a time; returns the labels trained."""
    todo = [run for run in runs if not _check_existing(run)]
    total = sum(run.config.steps for run in todo)
    bar = None
    if progress:
        bar = require("tqdm", "the progress bar (--no-progress runs without it)").tqdm(
            total=total, unit="step", desc=f"sweep: {len(todo)} of {len(runs)} runs to train", dynamic_ncols=True
        )
    update = bar.update if bar else (lambda n: None)
    done: list[str] = []
    try:
        if jobs == 1:
            previous = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for run in todo:
                    train_run(run, checkpoint_every, report=update, keep_samples=keep_samples)
                    done.append(run.label)
            finally:
                torch.set_num_threads(previous)
            return done
        # spawn: fresh interpreters, no forked OpenMP state; each worker runs one thread.
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, context.Pool(jobs) as pool:
            progress_queue = manager.Queue()
            pending = [pool.apply_async(_worker, (run, checkpoint_every, progress_queue, keep_samples)) for run in todo]
            while pending:
                try:
                    update(progress_queue.get(timeout=0.5))
                except queue_module.Empty:
                    pass
                for result in [r for r in pending if r.ready()]:
                    done.append(result.get())  # re-raises a worker's error here
                    pending.remove(result)
            while not progress_queue.empty():
                update(progress_queue.get())
        return done
    finally:
        if bar:
            bar.close()


def parse_choices(text: str, allowed=None, name: str = "") -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if allowed is not None and v not in allowed]
    if not values or bad:
        raise ValueError(f"--{name}: expected one or more of {', '.join(allowed)}, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m batchgan_ext.train.sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--preset", default="results", choices=sorted(PRESETS))
    p.add_argument("--datasets", default="grid25,ring8")
    p.add_argument("--methods", default=",".join(COMPARED_METHODS))
    p.add_argument("--seeds", type=int, default=3, help="seeds S .. S+K-1 (default 3)")
    p.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="S (default 0); e.g. 10 for seeds kept apart from a table's to choose a hyperparameter on",
    )
    p.add_argument("--gammas", default=None, help="comma-separated gammas: one run per gamma (batch methods)")
    p.add_argument("--steps", type=int, default=None, help="overrides the preset's generator steps")
    p.add_argument(
        "--n-disc", type=int, default=None, help="overrides the preset's discriminator steps per generator step"
    )
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once, one CPU thread each (default 2)")
    p.add_argument("--checkpoint-every", type=int, default=2000, help="generator steps between checkpoints")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        datasets = parse_choices(args.datasets, TRAINING_DATASETS, "datasets")
        methods = parse_choices(args.methods, METHODS, "methods")
        gammas = None if args.gammas is None else [float(g) for g in parse_choices(args.gammas, None, "gammas")]
        for name in ("seeds", "jobs", "checkpoint_every"):
            value = getattr(args, name)
            if value < 1:
                raise ValueError(f"--{name.replace('_', '-')}: expected a positive integer, got {value}")
        if args.first_seed < 0:
            raise ValueError(f"--first-seed: expected an integer >= 0, got {args.first_seed}")
        overrides = {name: getattr(args, name) for name in ("steps", "n_disc") if getattr(args, name) is not None}
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        runs = plan_runs(args.preset, args.out, datasets, methods, seeds, gammas, overrides)
    except ValueError as error:
        parser.error(str(error))
    trained = run_sweep(runs, jobs=args.jobs, checkpoint_every=args.checkpoint_every, progress=not args.no_progress)
    print(f"trained {len(trained)} runs, {len(runs) - len(trained)} already done; results under {args.out}")
    print(f"table: batchgan-report {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
