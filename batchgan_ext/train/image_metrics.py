"""Mode coverage and a Fréchet distance for the digits datasets, offline (VEEGAN's and PacGAN's stacked-MNIST
protocol, Table 2 of PacGAN, with the package's digit classifier in place of their MNIST classifier).

  modes_covered   modes (class tuples, one class per channel) that receive at least one of the n samples
  reverse_kl      KL(p_gen || uniform) of the generated mode histogram, in nats (PacGAN's "KL"; the 2D
                  metrics' name for the same quantity)
  frechet_distance FID's formula, ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), on the classifier's
                  penultimate features (the channels' features concatenated), against real samples
                  of the training split
  inception_score  Salimans et al. (2016)'s exp(E_x KL(p(y|x) || p(y))) with the digit classifier in place of
                  Inception, on the joint prediction over the 10^C modes (see `inception_score`)

Null rows (`IMAGE_NULL_GENERATORS`): what a generator with no model of the data scores on the same metrics.
  null-noise  uniform noise in [-1, 1]
  null-blend  every channel the average of two random training digits (digit-like strokes, no digit)
"""

import numpy as np
import torch

from ._extras import require
from .digit_classifier import DigitClassifier
from .image_datasets import DigitImages

__all__ = [
    "IMAGE_NULL_GENERATORS",
    "channel_classes",
    "channel_features",
    "frechet_distance",
    "image_mode_metrics",
    "image_null_samples",
    "inception_score",
]

IMAGE_NULL_GENERATORS = ("null-noise", "null-blend")
EVAL_BATCH = 1024


def _check_images(samples: torch.Tensor, dataset: DigitImages, name: str = "samples") -> None:
    if not isinstance(samples, torch.Tensor) or not samples.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor of images, got {type(samples).__name__}")
    if samples.dim() != 4 or tuple(samples.shape[1:]) != dataset.shape:
        raise ValueError(
            f"{name}: expected shape (N, {', '.join(map(str, dataset.shape))}), got {tuple(samples.shape)}"
        )
    if samples.shape[0] < 2:
        raise ValueError(f"{name}: expected at least 2 samples, got {samples.shape[0]}")
    if not torch.isfinite(samples).all():
        raise ValueError(f"{name}: contains NaN or infinite values")


@torch.no_grad()
def _per_channel(classifier: DigitClassifier, samples: torch.Tensor, fn) -> torch.Tensor:
    n, channels = samples.shape[:2]
    flat = samples.detach().float().cpu().reshape(n * channels, 1, *samples.shape[2:])
    out = torch.cat([fn(flat[i : i + EVAL_BATCH]) for i in range(0, flat.shape[0], EVAL_BATCH)])
    return out.reshape(n, channels, *out.shape[1:])


def channel_classes(classifier: DigitClassifier, samples: torch.Tensor) -> torch.Tensor:
    """(N, C) the class of every channel."""
    return _per_channel(classifier, samples, lambda x: classifier(x).argmax(1))


def channel_features(classifier: DigitClassifier, samples: torch.Tensor) -> torch.Tensor:
    """(N, C * 128) the classifier's penultimate features of the channels, concatenated."""
    return _per_channel(classifier, samples, classifier.features).flatten(1)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """FID's formula between two feature sets (rows are samples), in float64.

    Tr((S_a S_b)^(1/2)) is taken as the sum of the square roots of the eigenvalues of the symmetric
    S_a^(1/2) S_b S_a^(1/2) (the same eigenvalues), with scipy's eigh: ReLU features have dead units,
    so the covariances are singular, where sqrtm of the non-symmetric product warns and loses accuracy.
    """
    linalg = require("scipy.linalg", "the Fréchet distance (symmetric eigendecompositions)")
    a = features_a.double().numpy()
    b = features_b.double().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    trace_root = np.sqrt(np.clip(linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


def image_mode_metrics(
    samples: torch.Tensor,
    dataset: DigitImages,
    classifier: DigitClassifier,
    reference: torch.Tensor | None = None,
    seed: int = 12345,
    reference_features: torch.Tensor | None = None,
) -> dict:
    """Coverage, reverse KL and Fréchet distance of `samples` (N, C, 32, 32). The Fréchet distance is
    taken against `reference_features` (``channel_features`` of real images, computed once when
    several generators are scored), else the features of `reference` (real images), else of N samples
    of `dataset` drawn with `seed`."""
    _check_images(samples, dataset)
    if reference_features is None:
        if reference is None:
            reference = dataset.sample(samples.shape[0], torch.Generator().manual_seed(seed))
        _check_images(reference, dataset, "reference")
        reference_features = channel_features(classifier, reference)
    # one pass of the classifier body: the classes come from the same features as the distance
    features = _per_channel(classifier, samples, classifier.features)  # (N, C, 128)
    with torch.no_grad():
        logits = classifier.head(features)  # (N, C, 10)
    classes = logits.argmax(-1)
    modes = torch.zeros(samples.shape[0], dtype=torch.int64)
    for channel in range(classes.shape[1]):
        modes = modes * 10 + classes[:, channel]
    counts = torch.bincount(modes, minlength=dataset.num_modes).double()
    p = counts / counts.sum()
    seen = p > 0
    kl = float((p[seen] * torch.log(p[seen] * dataset.num_modes)).sum())
    fd = frechet_distance(features.flatten(1), reference_features)
    return {
        "num_samples": int(samples.shape[0]),
        "num_modes": dataset.num_modes,
        "modes_covered": int(seen.sum()),
        "reverse_kl": kl,
        "frechet_distance": fd,
        "inception_score": _inception_score(logits),
    }


def inception_score(classifier: DigitClassifier, samples: torch.Tensor) -> float:
    """Salimans et al. (2016)'s score ``exp(E_x KL(p(y|x) || p(y)))``, p(y) = E_x p(y|x), on images
    of C digit channels (N, C, 32, 32) in [-1, 1], with the digit classifier as p(y|x), over all N
    samples (the paper averages 10 splits of 50,000; one split here: the score's bias shrinks
    with N, so compare scores of the same N).

    y is the image's mode: for one channel (digits) the digit, 10 classes; for stacked digits the
    tuple of the channels' digits, 1,000 classes, with p(y|x) the product of the channels'
    predictions (the classifier sees each channel alone). The joint prediction is what measures
    stacked digits the way the mode count does: the score is at most the number of modes, reached
    by confident predictions spread evenly over all of them, while a generator that covers each
    digit per channel but only some of their combinations scores far less (per-channel scores,
    each at most 10, would miss that). Computed in float64."""
    if not isinstance(classifier, DigitClassifier):
        raise ValueError(f"classifier: expected a DigitClassifier, got {type(classifier).__name__}")
    if not isinstance(samples, torch.Tensor) or not samples.is_floating_point():
        raise ValueError(f"samples: expected a floating-point tensor of images, got {type(samples).__name__}")
    if samples.dim() != 4 or tuple(samples.shape[2:]) != (32, 32) or samples.shape[0] == 0 or samples.shape[1] == 0:
        raise ValueError(f"samples: expected a non-empty batch of shape (N, C, 32, 32), got {tuple(samples.shape)}")
    if not torch.isfinite(samples).all():
        raise ValueError("samples: contains NaN or infinite values")
    return _inception_score(_per_channel(classifier, samples, classifier))


def _joint_log_prob(logits: torch.Tensor) -> torch.Tensor:
    """(n, C, K) per-channel logits -> (n, K^C) log p(y|x) of the channel tuples, channel 0 the most
    significant digit (the mode index of `image_mode_metrics`)."""
    log_q = torch.log_softmax(logits.double(), -1)
    joint = log_q[:, 0]
    for channel in range(1, log_q.shape[1]):
        joint = (joint[:, :, None] + log_q[:, channel, None, :]).flatten(1)
    return joint


@torch.no_grad()
def _inception_score(logits: torch.Tensor) -> float:
    """The score from the classifier's logits (N, C, 10), in chunks (N x 10^C can be large)."""
    chunks = [logits[i : i + EVAL_BATCH] for i in range(0, logits.shape[0], EVAL_BATCH)]
    p_y = sum(_joint_log_prob(chunk).exp().sum(0) for chunk in chunks) / logits.shape[0]
    log_p_y = p_y.log()
    kl_sum = 0.0
    for chunk in chunks:
        log_q = _joint_log_prob(chunk)
        q = log_q.exp()
        # q log(q / p(y)), 0 where q underflows to 0 (p(y) >= q / N, so p(y) > 0 wherever q > 0)
        kl_sum += float(torch.where(q > 0, q * (log_q - log_p_y), 0.0).sum())
    return float(np.exp(kl_sum / logits.shape[0]))


def image_null_samples(name: str, dataset: DigitImages, n: int, seed: int = 0) -> torch.Tensor:
    """n samples of a null generator (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    if name == "null-noise":
        return torch.rand((n, *dataset.shape), generator=generator) * 2 - 1
    if name == "null-blend":
        return 0.5 * (dataset.sample(n, generator) + dataset.sample(n, generator))
    raise ValueError(f"name: expected one of {IMAGE_NULL_GENERATORS}, got {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Prints the reference rows of a dataset: real samples of both splits and the null generators."""
    import argparse

    from .digit_classifier import load_digit_classifier
    from .image_datasets import IMAGE_DATASETS, make_image_dataset

    p = argparse.ArgumentParser(prog="python -m batchgan_ext.train.image_metrics", description=main.__doc__)
    p.add_argument("--dataset", default="stacked-digits", choices=sorted(IMAGE_DATASETS))
    p.add_argument("--samples", type=int, default=26000, help="samples per row (PacGAN's Table 2: 26,000)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    classifier = load_digit_classifier()
    dataset = make_image_dataset(args.dataset)
    rows = {
        "real, training split": dataset.sample(args.samples, torch.Generator().manual_seed(1)),
        "real, held-out split": make_image_dataset(args.dataset, "test").sample(
            args.samples, torch.Generator().manual_seed(1)
        ),
    }
    rows.update({name: image_null_samples(name, dataset, args.samples) for name in IMAGE_NULL_GENERATORS})
    reference = channel_features(classifier, dataset.sample(args.samples, torch.Generator().manual_seed(12345)))
    print(f"{args.dataset}, {args.samples} samples per row")
    print("| samples | modes covered | reverse KL | Fréchet distance | inception score |\n|---|---|---|---|---|")
    for name, samples in rows.items():
        m = image_mode_metrics(samples, dataset, classifier, reference_features=reference)
        print(
            f"| {name} | {m['modes_covered']} | {m['reverse_kl']:.3f} | {m['frechet_distance']:.1f} "
            f"| {m['inception_score']:.2f} |"
        )


if __name__ == "__main__":
    main()
