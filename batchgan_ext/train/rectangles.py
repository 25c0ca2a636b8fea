"""The geometry data of "On the Anomalous Generalization of GANs" (ICLR 2020 submission) and its metric.

Datasets (``RECTANGLE_DATASETS``), 1 x 32 x 32 binary images in {-1, 1} (the image generator's tanh range;
the paper's 0/255 pixels mapped to -1/+1):

  two-rectangles           every image exactly two 8x8 squares (section 5.2: 25,600 images). Built as in
                           Appendix F: random three-rectangle images, from each of which one rectangle is
                           removed twice (two different ones), giving two training images. The pixel-wise
                           OR of that pair is the three-rectangle image and the AND the one rectangle they
                           share: the combinations of eq. 12 (the PCR negatives) come for free.
  three-rectangles-pair    Fig. 3's toy: two training images of three rectangles that share two of them (one
                           four-rectangle image with a different rectangle removed twice); AND has two
                           rectangles, OR four.

Rectangles are distinct: two rectangles of an image neither overlap nor touch, not even at a corner (at
least one background row or column between them). Without that, two squares would merge into one blob that
the paper's count ("rectangle number") would not call two rectangles. Images are determined by a seed.

Metric (``rectangle_metrics``). An image is binarised at the midpoint of [-1, 1] (pixel > 0 is foreground).
Its rectangles are the connected components of the foreground (8-connectivity, scipy.ndimage.label) that are
exact filled 8x8 squares (8x8 bounding box, 64 pixels): the paper's rectangles are all 8x8 and its anomalous
images are those whose rectangle number differs from the training images'. An image is *correct* when it
consists of exactly ``num_rectangles`` such components and nothing else (no other blob, however small), so
touching squares, a 16x8 bar or stray pixels all make it incorrect. Also reported: the lenient
``count_fraction`` (exactly ``num_rectangles`` components, whatever their shapes), the histogram of the
component count and the nearest-training-image check of the paper's Fig. 7 (for each of a fixed random subset
of training images, the Hamming distance to its nearest binarised generated image; the fraction within
``neighbour_threshold`` pixels, 16 by default = one rectangle moved by one pixel).

Null rows (``RECTANGLE_NULL_GENERATORS``): null-noise (every pixel +-1 with probability 1/2),
null-combinations (the dataset's AND/OR images: the pixel-wise combinations a fooled generator produces) and
null-random-squares (``num_rectangles`` 8x8 squares at uniformly random places, free to overlap or touch).
``reference_samples`` gives valid images of a different seed: correct by construction but not copies of the
training set, the level of the neighbour check for a generator that generalises without memorising.
"""

import functools

import numpy as np
import torch

from ._extras import require

__all__ = [
    "RECTANGLE_DATASETS",
    "RECTANGLE_NULL_GENERATORS",
    "RectangleImages",
    "make_rectangle_dataset",
    "nearest_training_distances",
    "rectangle_counts",
    "rectangle_metrics",
    "rectangle_null_samples",
    "reference_samples",
    "render_rectangles",
]

IMAGE_SIZE = 32
RECT_SIZE = 8
MAX_CORNER = IMAGE_SIZE - RECT_SIZE  # top-left corners in [0, 24]
TRAIN_CHECK = 500  # training images whose nearest generated image is looked for (the paper shows 30)
NEIGHBOUR_THRESHOLD = 16  # pixels: one 8x8 square moved by one pixel differs in 16
RECTANGLE_NULL_GENERATORS = ("null-noise", "null-combinations", "null-random-squares")
# name -> (rectangles per training image, training images); the paper's sizes
RECTANGLE_DATASETS = {"two-rectangles": (2, 25600), "three-rectangles-pair": (3, 2)}


def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _distinct(a: np.ndarray, b: np.ndarray) -> bool:
    """Two 8x8 squares with top-left corners a, b neither overlap nor touch (8-connectivity)."""
    return bool(np.abs(a - b).max() > RECT_SIZE)


def _random_layouts(count: int, rectangles: int, rng: np.random.Generator) -> np.ndarray:
    """(count, rectangles, 2) top-left corners of mutually distinct squares, by rejection sampling."""
    out = np.empty((count, rectangles, 2), dtype=np.int64)
    for i in range(count):
        placed = 0
        while placed < rectangles:
            candidate = rng.integers(0, MAX_CORNER + 1, size=2)
            if all(_distinct(candidate, out[i, j]) for j in range(placed)):
                out[i, placed] = candidate
                placed += 1
    return out


def render_rectangles(corners, mask=None) -> torch.Tensor:
    """(M, 1, 32, 32) images in {-1, 1} with an 8x8 square at every top-left corner of ``corners``
    (M, R, 2) (row, column) whose ``mask`` (M, R) entry is true (all when None)."""
    corners = torch.as_tensor(corners, dtype=torch.int64)
    if corners.dim() != 3 or corners.shape[2] != 2:
        raise ValueError(f"corners: expected shape (M, R, 2), got {tuple(corners.shape)}")
    if corners.numel() and (corners.min() < 0 or corners.max() > MAX_CORNER):
        raise ValueError(f"corners: expected values in [0, {MAX_CORNER}] (the square must fit in 32x32)")
    mask = torch.ones(corners.shape[:2], dtype=torch.bool) if mask is None else torch.as_tensor(mask, dtype=torch.bool)
    if mask.shape != corners.shape[:2]:
        raise ValueError(f"mask: expected shape {tuple(corners.shape[:2])}, got {tuple(mask.shape)}")
    pixels = torch.arange(IMAGE_SIZE)
    start = corners[..., None]  # (M, R, 2, 1)
    inside = (pixels >= start) & (pixels < start + RECT_SIZE)  # (M, R, 2, 32): rows and columns covered
    squares = inside[:, :, 0, :, None] & inside[:, :, 1, None, :] & mask[:, :, None, None]  # (M, R, 32, 32)
    return (squares.any(1).float() * 2 - 1)[:, None].contiguous()


@functools.cache
def _build(rectangles: int, num_images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Appendix F's construction: num_images / 2 images of rectangles + 1 squares; from each, two
    different squares are removed in turn. Returns the training images (pairs consecutive), the
    combinations ([AND, OR] per pair) and the training images' corners (N, rectangles, 2)."""
    rng = np.random.default_rng(seed)
    pairs = num_images // 2
    layouts = _random_layouts(pairs, rectangles + 1, rng)
    removed = np.stack([rng.choice(rectangles + 1, size=2, replace=False) for _ in range(pairs)])  # (P, 2)
    keep = np.ones((pairs, 2, rectangles + 1), dtype=bool)
    keep[np.arange(pairs), 0, removed[:, 0]] = False
    keep[np.arange(pairs), 1, removed[:, 1]] = False
    corners = np.stack([layouts[p][keep[p, k]] for p in range(pairs) for k in range(2)])  # (N, rectangles, 2)
    images = render_rectangles(np.repeat(layouts, 2, axis=0), keep.reshape(2 * pairs, rectangles + 1))
    both = keep[:, 0] & keep[:, 1]  # the squares the pair shares: its AND
    combos = torch.stack(
        [render_rectangles(layouts, both), render_rectangles(layouts)], dim=1
    )  # (P, 2, 1, 32, 32): AND, OR
    return images, combos.reshape(2 * pairs, 1, IMAGE_SIZE, IMAGE_SIZE), torch.as_tensor(corners)


class RectangleImages:
    """Binary images of ``num_rectangles`` distinct 8x8 squares (see the module docstring), with the
    interface of ``image_datasets.DigitImages`` that the Trainer uses (``sample``, ``shape``,
    ``channels``, ``name``) and the pixel-wise combinations of eq. 12 (``combinations``,
    ``sample_combinations``). ``images`` (N, 1, 32, 32): consecutive pairs come from one
    (num_rectangles + 1)-square image; ``combinations`` (N, 1, 32, 32): per pair its AND then its OR."""

    channels = 1
    shape = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self, name: str = "two-rectangles", num_rectangles: int = 2, num_images: int = 25600, seed: int = 0):
        self.num_rectangles = _check_count(num_rectangles, "num_rectangles")
        num_images = _check_count(num_images, "num_images", 2)
        if num_images % 2:
            raise ValueError(f"num_images: expected an even count (the images come in pairs), got {num_images}")
        if self.num_rectangles + 1 > 9:  # 9 distinct squares always fit (a 3x3 grid of pitch 9 <= 32)
            raise ValueError(f"num_rectangles: expected at most 8, got {num_rectangles}")
        self.seed = _check_count(seed, "seed", 0)
        self.name = name
        self.images, self.combinations, self.corners = _build(self.num_rectangles, num_images, self.seed)

    def __len__(self) -> int:
        return self.images.shape[0]

    def _draw(self, pool: torch.Tensor, n: int, generator, device) -> torch.Tensor:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive integer, got {n!r}")
        out = pool[torch.randint(pool.shape[0], (n,), generator=generator)]
        return out if device is None else out.to(device)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """n training images (n, 1, 32, 32) in {-1, 1}, drawn with replacement."""
        return self._draw(self.images, n, generator, device)

    def sample_combinations(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """n pixel-wise AND/OR combinations of training pairs (eq. 12's D_com), drawn with replacement."""
        return self._draw(self.combinations, n, generator, device)

    def is_correct(self, samples: torch.Tensor) -> torch.Tensor:
        """(N,) bool: the sample has exactly num_rectangles squares and nothing else (the metric's rule)."""
        counts, clean = rectangle_counts(samples)
        return (counts == self.num_rectangles) & clean

    def __repr__(self) -> str:
        name, k = self.name, self.num_rectangles
        return f"RectangleImages({name!r}, num_rectangles={k}, images={len(self)}, seed={self.seed})"


def make_rectangle_dataset(name: str, seed: int = 0) -> RectangleImages:
    if name not in RECTANGLE_DATASETS:
        raise ValueError(f"dataset: expected one of {sorted(RECTANGLE_DATASETS)}, got {name!r}")
    rectangles, num_images = RECTANGLE_DATASETS[name]
    return RectangleImages(name, rectangles, num_images, seed)


# -------------------------------------------------------------------------------------------
# metric


def _check_samples(samples, name: str = "samples") -> None:
    if not isinstance(samples, torch.Tensor) or not samples.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor of images, got {type(samples).__name__}")
    if samples.dim() != 4 or tuple(samples.shape[1:]) != RectangleImages.shape:
        raise ValueError(f"{name}: expected shape (N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}), got {tuple(samples.shape)}")
    if samples.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one image, got an empty batch")
    if torch.isnan(samples).any():
        raise ValueError(f"{name}: contains NaN")


def _binary(samples: torch.Tensor) -> torch.Tensor:
    return samples.detach().cpu()[:, 0] > 0  # the midpoint of [-1, 1]


def rectangle_counts(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For images (N, 1, 32, 32): (N,) int64 the number of connected foreground components (8-connectivity)
    and (N,) bool whether every one of them is an exact filled 8x8 square."""
    _check_samples(samples)
    ndimage = require("scipy.ndimage", "the rectangle count (connected components)")
    binary = _binary(samples).numpy()
    # 8-connectivity within an image, none across images: the stack is labelled in one call.
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True
    labels, num = ndimage.label(binary, structure=structure)
    n = binary.shape[0]
    if num == 0:
        return torch.zeros(n, dtype=torch.int64), torch.ones(n, dtype=torch.bool)
    slices = ndimage.find_objects(labels)
    image_of = np.array([s[0].start for s in slices])
    boxes = np.array([(s[1].stop - s[1].start, s[2].stop - s[2].start) for s in slices])
    areas = np.bincount(labels.ravel(), minlength=num + 1)[1:]
    square = (boxes[:, 0] == RECT_SIZE) & (boxes[:, 1] == RECT_SIZE) & (areas == RECT_SIZE * RECT_SIZE)
    counts = np.bincount(image_of, minlength=n)
    not_square = np.bincount(image_of, weights=~square, minlength=n)
    return torch.as_tensor(counts, dtype=torch.int64), torch.as_tensor(not_square == 0)


def nearest_training_distances(samples: torch.Tensor, training: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """(T,) for each training image, the Hamming distance (differing pixels after binarising) to its
    nearest sample: |a| + |b| - 2 a.b on {0, 1} pixels, exact in float32 for 1024 pixels."""
    _check_samples(samples)
    _check_samples(training, "training")
    a = _binary(training).flatten(1).float()
    best = torch.full((a.shape[0],), float("inf"))
    b_all = _binary(samples).flatten(1).float()
    for i in range(0, b_all.shape[0], chunk):
        b = b_all[i : i + chunk]
        d = a.sum(1, keepdim=True) + b.sum(1) - 2 * (a @ b.T)
        best = torch.minimum(best, d.min(1).values)
    return best.round().to(torch.int64)


def rectangle_metrics(
    samples: torch.Tensor,
    dataset: RectangleImages,
    train_check: int = TRAIN_CHECK,
    neighbour_threshold: int = NEIGHBOUR_THRESHOLD,
    seed: int = 0,
) -> dict:
    """The % of correct images of `samples` (N, 1, 32, 32) and the nearest-training-image check (see the
    module docstring) on ``train_check`` training images chosen with ``seed`` (all when fewer)."""
    if not isinstance(dataset, RectangleImages):
        raise ValueError(f"dataset: expected a RectangleImages, got {type(dataset).__name__}")
    train_check = _check_count(train_check, "train_check")
    neighbour_threshold = _check_count(neighbour_threshold, "neighbour_threshold", 0)
    counts, clean = rectangle_counts(samples)
    correct = (counts == dataset.num_rectangles) & clean
    histogram = torch.bincount(counts.clamp(max=5), minlength=6).double() / counts.shape[0]
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:train_check]
    nearest = nearest_training_distances(samples, dataset.images[order]).double()
    return {
        "num_samples": int(samples.shape[0]),
        "num_rectangles": dataset.num_rectangles,
        "correct_fraction": float(correct.double().mean()),
        "count_fraction": float((counts == dataset.num_rectangles).double().mean()),  # right count, any shapes
        "all_squares_fraction": float(clean.double().mean()),  # every component an exact 8x8 square
        "component_count_fractions": {("5+" if k == 5 else str(k)): float(v) for k, v in enumerate(histogram)},
        "train_checked": int(order.shape[0]),
        "neighbour_threshold": neighbour_threshold,
        "neighbour_fraction": float((nearest <= neighbour_threshold).double().mean()),
        "exact_copy_fraction": float((nearest == 0).double().mean()),
        "nearest_distance": float(nearest.mean()),
    }


def rectangle_null_samples(name: str, dataset: RectangleImages, n: int, seed: int = 0) -> torch.Tensor:
    """n samples of a null generator (see the module docstring)."""
    n = _check_count(n, "n")
    generator = torch.Generator().manual_seed(seed)
    if name == "null-noise":
        return (torch.rand((n, *dataset.shape), generator=generator) < 0.5).float() * 2 - 1
    if name == "null-combinations":
        return dataset.sample_combinations(n, generator)
    if name == "null-random-squares":
        corners = torch.randint(MAX_CORNER + 1, (n, dataset.num_rectangles, 2), generator=generator)
        return render_rectangles(corners)
    raise ValueError(f"name: expected one of {RECTANGLE_NULL_GENERATORS}, got {name!r}")


def reference_samples(dataset: RectangleImages, n: int, seed: int = 1) -> torch.Tensor:
    """n valid images (num_rectangles distinct squares) laid out with another seed than the dataset's."""
    n = _check_count(n, "n")
    if seed == dataset.seed:
        raise ValueError(f"seed: expected a seed other than the dataset's ({dataset.seed}), got {seed}")
    layouts = _random_layouts(n, dataset.num_rectangles, np.random.default_rng(seed))
    return render_rectangles(layouts)
