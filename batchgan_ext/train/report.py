"""The table of a sweep's results folder, with the null rows, mean +- standard error over seeds:

    batchgan-report results/2d                   # print the table
    batchgan-report results/2d --readme README.md # and replace the README's table
    batchgan-report results/2d-gamma --plot gamma.png   # + loss curves per gamma

The README's table sits between the lines `<!-- results:<name>:begin -->` and
`<!-- results:<name>:end -->`, <name> being the folder's name; the report refuses a folder whose
runs of one dataset do not share one configuration apart from method and seed (the same budget for
every method), since such a table would compare unlike runs.
"""

import argparse
import os
import sys

from .image_datasets import IMAGE_DATASETS
from .networks import METHODS
from .results import aggregate, format_table, load_records, null_records

__all__ = ["main", "render"]

# Config fields that differ between the rows of one table by design.
_PER_RUN = ("method", "seed", "gamma")


def _shared_config(records: list[dict]) -> dict:
    shared: dict = {}
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        configs = [
            {k: v for k, v in r["config"].items() if k not in _PER_RUN} for r in records if r["dataset"] == dataset
        ]
        for config in configs[1:]:
            diff = sorted(k for k in set(config) | set(configs[0]) if config.get(k) != configs[0].get(k))
            if diff:
                raise ValueError(f"results: the {dataset} runs differ in {', '.join(diff)} (not one budget)")
        shared[dataset] = configs[0]
    return shared


def render(folder: str, markdown: bool = False) -> tuple[str, list[dict]]:
    """The table of the results under `folder` and its aggregated rows."""
    records = load_records(folder)
    if not records:
        raise ValueError(f"results: no run results under {folder}")
    shared = _shared_config(records)
    by_gamma = len({r.get("gamma") for r in records if r["method"] in ("bgan", "mbgan")}) > 1
    keys = ("dataset", "method", "gamma") if by_gamma else ("dataset", "method")
    # The methods in the trainer's order (baselines first), whatever order the files were found in.
    order = {method: index for index, method in enumerate(METHODS)}
    records = sorted(
        records, key=lambda r: (r["dataset"], order.get(r["method"], len(order)), r.get("gamma") or 0.0, r["seed"])
    )
    rows = aggregate(records, keys)
    nulls = []
    for dataset in shared:
        num_samples = next(r["num_samples"] for r in records if r["dataset"] == dataset)
        nulls += null_records(dataset, num_samples)
    table = format_table(rows, nulls, markdown=markdown, extra=("gamma",) if by_gamma else ())
    budget = []
    for dataset, config in shared.items():
        budget.append(f"{dataset}: {budget_line(config)}")
    note = "\n".join(("- " if markdown else "") + line for line in budget)
    return f"{table}\n\n{note}", rows


def budget_line(config: dict) -> str:
    """The shared configuration of a table's runs, in words."""
    common = (
        f"{config['steps']} generator steps, n_disc {config['n_disc']}, batch {config['batch_size']}, "
        f"sets of {config['set_size']}, Adam lr {config['lr']:g} (beta1 {config['beta1']:g}, linear decay over the "
        f"last {config['lr_decay']:.0%}), "
    )
    if config["dataset"] in IMAGE_DATASETS:
        networks = (
            f"DCGAN generator and SN-GAN discriminator of base width {config['hidden']}, latent size "
            f"{config['latent_dim']}"
        )
    else:
        networks = (
            f"{config['hidden']}-unit networks (G {config['g_layers']} layers"
            f"{' + batch norm' if config['g_batch_norm'] else ''}, D {config['d_layers']})"
        )
    return f"{common}{networks}, {config['eval_samples']} samples evaluated"


def replace_block(text: str, name: str, block: str) -> str:
    begin, end = f"<!-- results:{name}:begin -->", f"<!-- results:{name}:end -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"readme: expected one '{begin}' line followed by one '{end}' line")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def plot_gamma(folder: str, path: str) -> None:
    """The BGAN paper's Fig. 2 for this benchmark: D and G losses over training, one curve per gamma."""
    from .plots import plot_losses

    records = sorted(load_records(folder), key=lambda r: (r["dataset"], r["method"], r["gamma"], r["seed"]))
    histories = {f"{r['method']} gamma={r['gamma']:g} seed {r['seed']}": r["history"] for r in records}
    plot_losses(path, histories, f"losses by batch smoothing gamma ({folder})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m batchgan_ext.train.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", help="a sweep's --out folder")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--readme", default=None, help="replace the table between this file's results markers")
    p.add_argument("--plot", default=None, help="write the loss curves of every run to this PNG")
    args = p.parse_args(argv)
    try:
        table, _ = render(args.folder, markdown=args.markdown or bool(args.readme))
        print(table)
        if args.readme:
            name = os.path.basename(os.path.normpath(args.folder))
            with open(args.readme) as f:
                text = f.read()
            command = f"batchgan-report {args.folder} --readme {args.readme}"
            text = replace_block(text, name, f"{table}\n\nRegenerated from the result files by `{command}`.")
            with open(args.readme, "w") as f:
                f.write(text)
            print(f"updated {args.readme}")
        if args.plot:
            plot_gamma(args.folder, args.plot)
            print(f"wrote {args.plot}")
    except ValueError as error:
        p.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
