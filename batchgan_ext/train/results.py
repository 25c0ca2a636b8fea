"""Result records of 2D runs, their aggregation over seeds, and the tables printed and written to
the README. A record is one run's metrics (``mode_metrics``) plus its dataset, method, seed,
configuration and wall time; null rows are records of the null generators (metrics.py) with the
same sample count. Tables show mean +- standard error over seeds.
"""

import json
import math
import os

from .datasets import make_dataset
from .metrics import NULL_GENERATORS, null_metrics

__all__ = [
    "METRICS",
    "aggregate",
    "clears_null_rows",
    "format_table",
    "load_records",
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
_PERCENT = {"high_quality_fraction"}


def null_records(dataset: str, num_samples: int = 2500) -> list[dict]:
    """The null rows of `dataset`, measured with the benchmark's metric and sample count."""
    ds = make_dataset(dataset)
    rows = null_metrics(ds.means, ds.std, num_samples)
    return [dict(dataset=dataset, method=kind, seed=None, **rows[kind]) for kind in NULL_GENERATORS]


def _mean_se(values: list[float]) -> tuple[float, float | None]:
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
    for record in records:
        groups.setdefault(tuple(record.get(k) for k in keys), []).append(record)
    rows = []
    for key, group in groups.items():
        row = dict(zip(keys, key))
        row["runs"] = len(group)
        row["num_modes"] = group[0]["num_modes"]
        for name, *_ in METRICS:
            values = [r[name] for r in group]
            row[name] = None if any(v is None for v in values) else _mean_se([float(v) for v in values])
        times = [r["wall_seconds"] for r in group if r.get("wall_seconds") is not None]
        row["wall_seconds"] = sum(times) / len(times) if times else None
        rows.append(row)
    return rows


def clears_null_rows(row: dict, nulls: list[dict]) -> bool:
    """True when the row's mean beats every null row on every metric (modes by the VEEGAN rule may
    tie: uniform noise already reaches 24 of 25 there)."""
    for null in nulls:
        for name, _, _, direction in METRICS:
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
    header = ["dataset", "method", *extra, "runs"] + [title for _, title, _, _ in METRICS]
    header += ["clears null rows", "time/run"]
    lines = []
    for null in nulls or []:
        cells = [null["dataset"], null["method"], *("" for _ in extra), "-"]
        cells += [_cell(null[k], f, k in _PERCENT) for k, _, f, _ in METRICS]
        lines.append(cells + ["(null)", "-"])
    for row in rows:
        row_nulls = [n for n in nulls or [] if n["dataset"] == row["dataset"]]
        cells = [row["dataset"], row["method"], *(str(row.get(k, "")) for k in extra), str(row["runs"])]
        cells += [_cell(row[k], f, k in _PERCENT) for k, _, f, _ in METRICS]
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
