"""Salimans et al. (2016)'s techniques on ring8: the standard GAN with each technique on or off, same
budget (a TrainConfig preset, `demo` by default), several seeds, one run at a time.

    python examples/techniques_ring8.py --out results/techniques --seeds 3
    python examples/techniques_ring8.py --out results/techniques --table-only

Each finished run writes <out>/ring8/standard-<technique>/seed<k>.json (metrics, config, wall time);
existing files are skipped, so an interrupted experiment continues where it stopped. The table (mean
+- standard error over seeds, the null rows first) is printed and written to <out>/ring8/table.md.
"""

import argparse
import dataclasses
import os
import sys

import torch

from batchgan_ext.train.results import aggregate, format_table, load_records, null_records, write_json
from batchgan_ext.train.trainer import PRESETS, TrainConfig, Trainer, preset_values

HISTORICAL_WEIGHT = 0.01  # the paper gives no weight; 2 w (theta - mean) is then of the order of D's gradients here
SMALL_HISTORICAL_WEIGHT = 0.001  # and a tenth of it, to see the weight's effect
TECHNIQUES = {
    "none": {},
    "one-sided-smoothing": dict(one_sided_smoothing=True),
    "feature-matching": dict(feature_matching=True),
    f"historical-averaging-{SMALL_HISTORICAL_WEIGHT:g}": dict(historical_averaging=SMALL_HISTORICAL_WEIGHT),
    f"historical-averaging-{HISTORICAL_WEIGHT:g}": dict(historical_averaging=HISTORICAL_WEIGHT),
    "all-three": dict(one_sided_smoothing=True, feature_matching=True, historical_averaging=HISTORICAL_WEIGHT),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--method", default="standard")
    p.add_argument(
        "--techniques", default=",".join(TECHNIQUES), help="comma-separated subset of " + ",".join(TECHNIQUES)
    )
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = [t for t in args.techniques.split(",") if t]
    bad = [t for t in names if t not in TECHNIQUES]
    if bad:
        p.error(f"--techniques: unknown {bad}; expected some of {list(TECHNIQUES)}")
    folder = os.path.join(args.out, "ring8")
    if not args.table_only:
        for seed in range(args.seeds):
            for name in names:
                path = os.path.join(folder, f"{args.method}-{name}", f"seed{seed}.json")
                if os.path.exists(path):
                    continue
                values = dict(preset_values(args.preset, "ring8"), method=args.method, seed=seed)
                config = TrainConfig(**values, **TECHNIQUES[name])
                trainer = Trainer(config)
                trainer.train(progress=False)
                metrics = trainer.evaluate()
                record = dict(dataset="ring8", method=args.method, technique=name, seed=seed, **metrics)
                record.update(wall_seconds=trainer.train_seconds, config=dataclasses.asdict(config))
                write_json(path, record)
                print(
                    f"{name} seed {seed}: {metrics['modes_covered_strict']} modes strict, "
                    f"{100 * metrics['high_quality_fraction']:.1f}% hq, {trainer.train_seconds:.0f} s",
                    flush=True,
                )
    records = load_records(folder)
    order = {name: i for i, name in enumerate(TECHNIQUES)}
    records.sort(key=lambda r: (order.get(r.get("technique"), len(order)), r["seed"]))
    rows = aggregate(records, ("dataset", "method", "technique"))
    nulls = null_records("ring8", records[0]["num_samples"])
    table = format_table(rows, nulls, markdown=True, extra=("technique",))
    c = records[0]["config"]
    budget = (
        f"ring8, {args.method} GAN, preset {args.preset}: {c['steps']} generator steps, batch {c['batch_size']}, "
        f"Adam lr {c['lr']:g}, {len({r['seed'] for r in records})} seeds; all-three: historical averaging "
        f"weight {HISTORICAL_WEIGHT:g}; {c['eval_samples']} samples scored"
    )
    text = f"{table}\n\n{budget}\n"
    print(text)
    with open(os.path.join(folder, "table.md"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
