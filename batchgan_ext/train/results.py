"""Result records of runs, their aggregation over seeds, and the tables printed and written to the
README. A record is one run's metrics (``mode_metrics`` for the 2D mixtures, ``image_mode_metrics``
for the digit images) plus its dataset, method, seed, configuration and wall time; null rows are
records of the null generators (metrics.py, image_metrics.py) with the same sample count. Tables
show mean +- standard error over seeds.
"""

import json
import math
import os

from .datasets import make_dataset
from .digit_classifier import load_digit_classifier
from .image_datasets import IMAGE_DATASETS, make_image_dataset
from .image_metrics import IMAGE_NULL_GENERATORS, image_mode_metrics, image_null_samples
from .metrics import NULL_GENERATORS, null_metrics
from .rectangles import (
    RECTANGLE_DATASETS,
    RECTANGLE_NULL_GENERATORS,
    make_rectangle_dataset,
    rectangle_metrics,
    rectangle_null_samples,
)

__all__ = [
    "IMAGE_METRICS",
    "METRICS",
    "aggregate",
    "clears_null_rows",
    "format_table",
    "load_records",
    "mean_se",
    "null_records",
    "write_json",
]

# (key, column title, format, direction): direction +1 when larger is better.
METRICS = (
    ("modes_covered", "modes (VEEGAN rule)", "{:.1f}", +1),
    ("modes_covered_strict", "modes (strict)", "{:.1f}", +1),
    ("high_quality_fraction", "% high quality", "{:.1f}", +1),
    ("reverse_kl", "reverse KL", "{:.3f}", -1),
)
# The digit images' metrics (PacGAN's Table 2 and a Fréchet distance in the classifier's features).
IMAGE_METRICS = (
    ("modes_covered", "modes covered", "{:.1f}", +1),
    ("reverse_kl", "KL to uniform", "{:.3f}", -1),
    ("frechet_distance", "classifier FD", "{:.1f}", -1),
    ("inception_score", "inception score", "{:.2f}", +1),
)
# The rectangles' metrics (rectangles.rectangle_metrics: % correct and the nearest-training-image check).
RECTANGLE_METRICS = (
    ("correct_fraction", "% correct", "{:.1f}", +1),
    ("neighbour_fraction", "% train w/ neighbour", "{:.1f}", +1),
    ("nearest_distance", "NN distance (px)", "{:.1f}", -1),
)
_PERCENT = {"high_quality_fraction", "correct_fraction", "neighbour_fraction"}


def metrics_of(datasets) -> tuple:
    """The metrics of a table of these datasets: all 2D mixtures or all digit images."""
    kinds = {"rectangles" if name in RECTANGLE_DATASETS else name in IMAGE_DATASETS for name in datasets}
    if len(kinds) > 1:
        raise ValueError(f"results: one table holds 2D or image datasets, not both (got {sorted(set(datasets))})")
    if kinds == {"rectangles"}:
        return RECTANGLE_METRICS
    return IMAGE_METRICS if kinds == {True} else METRICS


def null_records(dataset: str, num_samples: int = 2500) -> list[dict]:
    """The null rows of `dataset`, measured with the benchmark's metric and sample count (for the
    images: the generator's evaluation, against the same real reference samples)."""
    if dataset in RECTANGLE_DATASETS:
        ds = make_rectangle_dataset(dataset)
        return [
            dict(
                dataset=dataset,
                method=kind,
                seed=None,
                **rectangle_metrics(rectangle_null_samples(kind, ds, num_samples), ds),
            )
            for kind in RECTANGLE_NULL_GENERATORS
        ]
    if dataset in IMAGE_DATASETS:
        ds, classifier = make_image_dataset(dataset), load_digit_classifier()
        return [
            dict(
                dataset=dataset,
                method=kind,
                seed=None,
                **image_mode_metrics(image_null_samples(kind, ds, num_samples), ds, classifier),
            )
            for kind in IMAGE_NULL_GENERATORS
        ]
    ds = make_dataset(dataset)
    rows = null_metrics(ds.means, ds.std, num_samples)
    return [dict(dataset=dataset, method=kind, seed=None, **rows[kind]) for kind in NULL_GENERATORS]


def mean_se(values: list[float]) -> tuple[float, float | None]:
    """The mean and its standard error over runs (None for a single run)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


def aggregate(records: list[dict], keys: tuple[str, ...] = ("dataset", "method")) -> list[dict]:
    """One row per distinct value of `keys` (first-seen order): for each metric its mean and
    standard error over the records (None when some run had no high-quality sample and so no
    reverse KL), the number of runs and the mean wall time."""
    groups: dict[tuple, list[dict]] = {}
    metrics = metrics_of([r["dataset"] for r in records])
    for record in records:
        groups.setdefault(tuple(record.get(k) for k in keys), []).append(record)
    rows = []
    for key, group in groups.items():
        row = dict(zip(keys, key))
        row["runs"] = len(group)
        row["num_modes"] = group[0].get("num_modes")  # the rectangles' records have none
        for name, *_ in metrics:
            if any(name not in r for r in group):  # a metric added after these runs (e.g. inception_score)
                continue
            values = [r[name] for r in group]
            row[name] = None if any(v is None for v in values) else mean_se([float(v) for v in values])
        times = [r["wall_seconds"] for r in group if r.get("wall_seconds") is not None]
        row["wall_seconds"] = sum(times) / len(times) if times else None
        rows.append(row)
    return rows


def clears_null_rows(row: dict, nulls: list[dict]) -> bool:
    """True when the row's mean beats every null row on every metric (modes by the VEEGAN rule may
    tie: uniform noise already reaches 24 of 25 there)."""
    for null in nulls:
        for name, _, _, direction in metrics_of([row["dataset"]]):
            if name not in row or name not in null:  # not measured for these runs: no verdict on it
                continue
            value, reference = row[name], null[name]
            if value is None:
                return False
            mean = value[0] if isinstance(value, tuple) else value
            ref = reference[0] if isinstance(reference, tuple) else reference
            if ref is None:
                continue
            if name == "modes_covered":
                if mean < ref:
                    return False
            elif (mean - ref) * direction <= 0:
                return False
    return True


def _cell(value, fmt: str, percent: bool) -> str:
    if value is None:
        return "-"
    mean, se = value if isinstance(value, tuple) else (value, None)
    scale = 100.0 if percent else 1.0
    text = fmt.format(mean * scale)
    return text if se is None else f"{text} ± {fmt.format(se * scale)}"


def format_table(rows: list[dict], nulls: list[dict] | None = None, markdown: bool = False, extra=()) -> str:
    """A table of aggregated rows (from :func:`aggregate`), the null rows first. `extra` names
    further row keys shown as columns (e.g. "gamma")."""
    metrics = metrics_of([r["dataset"] for r in [*rows, *(nulls or [])]])
    header = ["dataset", "method", *extra, "runs"] + [title for _, title, _, _ in metrics]
    header += ["clears null rows", "time/run"]
    lines = []
    for null in nulls or []:
        cells = [null["dataset"], null["method"], *("" for _ in extra), "-"]
        cells += [_cell(null.get(k), f, k in _PERCENT) for k, _, f, _ in metrics]
        lines.append(cells + ["(null)", "-"])
    for row in rows:
        row_nulls = [n for n in nulls or [] if n["dataset"] == row["dataset"]]
        cells = [row["dataset"], row["method"], *(str(row.get(k, "")) for k in extra), str(row["runs"])]
        cells += [_cell(row.get(k), f, k in _PERCENT) for k, _, f, _ in metrics]
        cells.append(("yes" if clears_null_rows(row, row_nulls) else "no") if row_nulls else "-")
        cells.append("-" if row.get("wall_seconds") is None else f"{row['wall_seconds']:.0f} s")
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(out + ["| " + " | ".join(cells) + " |" for cells in lines])
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in lines]
    return "\n".join(out)


def write_json(path: str, data) -> None:
    """Writes atomically (a temporary file renamed into place), so a killed sweep never leaves a
    half-written result that would be taken as finished."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def load_records(folder: str) -> list[dict]:
    """Every run record (*.json with a "method" and a "seed") under `folder`, sorted by path."""
    records = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            path = os.path.join(root, name)
            try:
                with open(path) as f:
                    record = json.load(f)
            except (OSError, json.JSONDecodeError) as error:
                raise ValueError(f"results: {path} is not a readable JSON result ({error})") from error
            if isinstance(record, dict) and "method" in record and "seed" in record:
                records.append(record)
    return records
