"""The geometry experiment of "On the Anomalous Generalization of GANs" (section 5.2, Fig. 1 right, Fig. 7):
vanilla, SC, PCR and SC + PCR on two-rectangles, the % of correct generated images over training and a
final table (mean +- standard error over seeds) with the null rows and reference rows of rectangles.py.

    python -m batchgan_ext.train.anomalous_experiment --out results/rectangles --seeds 3 --steps 600

Every run writes <out>/<variant>/seed<k>.json as soon as it ends (a finished file is skipped on a rerun,
so an interrupted experiment resumes); table.json and the printed table are rebuilt from every run file.
"""

import argparse
import dataclasses
import json
import os
import time

import torch

from .rectangles import (
    RECTANGLE_NULL_GENERATORS,
    make_rectangle_dataset,
    rectangle_metrics,
    rectangle_null_samples,
    reference_samples,
)
from .results import mean_se, write_json
from .trainer import IMAGE_PRESET, TrainConfig, Trainer

__all__ = ["VARIANTS", "main", "run_variant", "summarise"]

# variant -> (sample_correction, combination_regularization)
VARIANTS = {"vanilla": (False, False), "sc": (True, False), "pcr": (False, True), "sc+pcr": (True, True)}
SUMMARY_KEYS = ("correct_fraction", "count_fraction", "neighbour_fraction", "exact_copy_fraction", "nearest_distance")


def run_variant(base: TrainConfig, variant: str, eval_every: int, curve_samples: int) -> dict:
    """Trains one variant, scoring `curve_samples` samples every `eval_every` steps, then the final metrics."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    sc, pcr = VARIANTS[variant]
    config = dataclasses.replace(base, sample_correction=sc, combination_regularization=pcr)
    trainer = Trainer(config)
    curve = {"step": [], "correct_fraction": [], "count_fraction": []}

    def score() -> None:
        m = rectangle_metrics(trainer.sample(curve_samples, seed=777), trainer.dataset, train_check=1)
        curve["step"].append(trainer.step)
        curve["correct_fraction"].append(m["correct_fraction"])
        curve["count_fraction"].append(m["count_fraction"])

    score()
    while trainer.step < config.steps:
        trainer.train(min(trainer.step + eval_every, config.steps), progress=False)
        score()
    metrics = trainer.evaluate()
    return dict(
        dataset=config.dataset,
        method=variant,
        gan=config.method,
        seed=config.seed,
        **metrics,
        curve=curve,
        negative_stats=None if trainer.negatives is None else trainer.negatives.stats,
        wall_seconds=trainer.train_seconds,
        config=dataclasses.asdict(config),
    )


def summarise(records: list[dict], num_samples: int, dataset_name: str = "two-rectangles") -> dict:
    """Rows (mean, s.e.) per variant, the null rows and the reference rows, all on num_samples samples."""
    rows = []
    for variant in VARIANTS:
        group = [r for r in records if r["method"] == variant]
        if group:
            row = {"method": variant, "runs": len(group), "seeds": [r["seed"] for r in group]}
            row.update({k: list(mean_se([r[k] for r in group])) for k in SUMMARY_KEYS})
            row["wall_seconds"] = sum(r["wall_seconds"] for r in group) / len(group)
            rows.append(row)
    dataset = make_rectangle_dataset(dataset_name)
    nulls = {name: rectangle_null_samples(name, dataset, num_samples) for name in RECTANGLE_NULL_GENERATORS}
    references = {
        "ref-training-resampled": dataset.sample(num_samples, torch.Generator().manual_seed(1)),
        "ref-fresh-valid": reference_samples(dataset, num_samples),
    }
    null_rows = [dict(method=k, **rectangle_metrics(v, dataset)) for k, v in {**nulls, **references}.items()]
    return {"rows": rows, "null_rows": null_rows, "num_samples": num_samples}


def format_summary(summary: dict) -> str:
    def cell(value, percent: bool) -> str:
        mean, se = value if isinstance(value, list) else (value, None)
        scale, fmt = (100.0, "{:.1f}") if percent else (1.0, "{:.1f}")
        return fmt.format(mean * scale) + ("" if se is None else " ± " + fmt.format(se * scale))

    header = "| variant | runs | % correct (exact squares) | % with 2 components | % train images with a neighbour "
    header += "| % exact copies | mean NN distance (px) |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for row in summary["null_rows"]:
        cells = [f"{row['method']} (null/reference)", "-"]
        cells += [cell(row[k], k != "nearest_distance") for k in SUMMARY_KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    for row in summary["rows"]:
        cells = [row["method"], str(row["runs"])] + [cell(row[k], k != "nearest_distance") for k in SUMMARY_KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m batchgan_ext.train.anomalous_experiment", description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--method", default="standard", help="the GAN loss (GANLoss method) every variant uses")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--hidden", type=int, default=IMAGE_PRESET["hidden"])
    p.add_argument("--batch-size", type=int, default=IMAGE_PRESET["batch_size"])
    p.add_argument("--lr", type=float, default=IMAGE_PRESET["lr"])
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--curve-samples", type=int, default=1000)
    p.add_argument("--eval-samples", type=int, default=10000)
    args = p.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    if not variants or any(v not in VARIANTS for v in variants):
        p.error(f"--variants: expected some of {','.join(VARIANTS)}, got {args.variants!r}")
    torch.set_num_threads(1)
    values = dict(IMAGE_PRESET, hidden=args.hidden, batch_size=args.batch_size, lr=args.lr)
    values.update(dataset="two-rectangles", method=args.method, steps=args.steps, eval_samples=args.eval_samples)
    for seed in range(args.seeds):
        for variant in variants:
            path = os.path.join(args.out, variant, f"seed{seed}.json")
            if os.path.exists(path):
                continue
            start = time.perf_counter()
            record = run_variant(TrainConfig(**values, seed=seed), variant, args.eval_every, args.curve_samples)
            write_json(path, record)
            curve = " ".join(f"{100 * c:.0f}" for c in record["curve"]["correct_fraction"])
            counts = " ".join(f"{100 * c:.0f}" for c in record["curve"]["count_fraction"])
            took = time.perf_counter() - start
            print(f"{variant} seed {seed}: {100 * record['correct_fraction']:.1f}% correct, "
                  f"curve [{curve}], 2 components [{counts}], {took:.0f} s", flush=True)  # fmt: skip
    records = []
    for variant in VARIANTS:
        folder = os.path.join(args.out, variant)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            with open(os.path.join(folder, name)) as f:
                records.append(json.load(f))
    summary = summarise(records, args.eval_samples)
    write_json(os.path.join(args.out, "table.json"), summary)
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
