"""Sample Correction (SC) and Pixel-wise Combination Regularization (PCR) of "On the Anomalous
Generalization of GANs" (section 5.1, Appendix F), as a change of the discriminator's negative batch that
works with every ``GANLoss`` method.

The package's losses take a real and a fake batch of the same shape (the batch methods mix them into
sets), so both techniques keep the fake batch's size and replace some of its images:

  PCR  eq. 13 weighs the generated negatives and the combination negatives (eq. 12's D_com, here the
       dataset's precomputed pixel-wise AND/OR of training pairs) by 1/2 each; the paper's natural-image
       runs add as many combination images as generated ones. So ``combination_ratio`` (default 1/2) of
       the fake batch, at random positions, is replaced by combination images: with a per-sample loss
       the negative term is then eq. 13's 1/2 E_g + 1/2 E_com exactly.
  SC   the generated images that are already correct (the dataset's ``is_correct``: exactly the training
       images' rectangle number) are "discarded" from D's negatives (Appendix F), "replaced with less
       realistic ones" (section 5.1). Each correct generated image is replaced by an incorrect generated
       image of the same batch drawn uniformly with replacement: for a per-sample loss that is, in
       expectation, the loss on the incorrect images alone, i.e. discarding the correct ones, while the
       batch keeps its size. When the batch holds no incorrect generated image, there is nothing of the
       generator's left to use, and the correct ones are replaced by combination images, which are
       incorrect by construction (k - 1 or k + 1 rectangles); ``stats`` counts these fallback steps.

SC runs first on the generated images, then PCR overwrites its positions (those are not generated images
any more), so with both on the generated half holds no correct image.
"""

import torch

__all__ = ["NegativeBatch", "correct_replaced"]


def _check_fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{name}: expected a fraction in (0, 1), got {value!r}")
    return float(value)


def correct_replaced(
    fake: torch.Tensor,
    correct: torch.Tensor,
    fallback: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SC on one batch: ``fake`` (N, ...) with each row where ``correct`` (N,) bool is true replaced by an
    incorrect row of ``fake`` drawn uniformly with replacement, or, when no row is incorrect, by a row of
    ``fallback`` (M, ...) drawn the same way (a batch of only correct images and no fallback raises). A new
    tensor; ``fake`` is not modified."""
    if not isinstance(fake, torch.Tensor) or fake.dim() < 2 or fake.shape[0] == 0:
        got = tuple(fake.shape) if isinstance(fake, torch.Tensor) else type(fake).__name__
        raise ValueError(f"fake: expected a non-empty batch tensor (N, ...), got {got}")
    if not isinstance(correct, torch.Tensor) or correct.dtype != torch.bool or correct.shape != fake.shape[:1]:
        raise ValueError(f"correct: expected a bool tensor of shape ({fake.shape[0]},), got {correct!r}")
    correct = correct.to(fake.device)
    out = fake.clone()
    wrong = torch.nonzero(~correct, as_tuple=True)[0]
    count = int(correct.sum())
    if count == 0:
        return out
    if wrong.numel() > 0:
        pick = wrong[torch.randint(wrong.numel(), (count,), generator=generator).to(wrong.device)]
        out[correct] = fake[pick]
        return out
    if fallback is None:
        raise ValueError("fallback: every image of the batch is correct and no fallback negatives were given")
    if not isinstance(fallback, torch.Tensor) or fallback.shape[1:] != fake.shape[1:] or fallback.shape[0] == 0:
        raise ValueError(f"fallback: expected a non-empty batch of images of shape {tuple(fake.shape[1:])}")
    out[correct] = fallback[torch.randint(fallback.shape[0], (count,), generator=generator)].to(out)
    return out


class NegativeBatch:
    """D's negative batch with SC and/or PCR (see the module docstring) for a dataset with ``is_correct``
    and ``sample_combinations`` (``rectangles.RectangleImages``). Call it on the generated batch of D's
    step; ``stats`` accumulates what was replaced."""

    def __init__(
        self,
        dataset,
        sample_correction: bool = False,
        combination_regularization: bool = False,
        combination_ratio: float = 0.5,
    ):
        flags = {"sample_correction": sample_correction, "combination_regularization": combination_regularization}
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise ValueError(f"{name}: expected a bool, got {value!r}")
        if not (sample_correction or combination_regularization):
            raise ValueError("sample_correction: expected SC or PCR (combination_regularization) on, got neither")
        if not (hasattr(dataset, "is_correct") and hasattr(dataset, "sample_combinations")):
            raise ValueError(
                f"dataset: expected one with is_correct and sample_combinations (a rectangles dataset), "
                f"got {type(dataset).__name__}"
            )
        self.dataset = dataset
        self.sample_correction = sample_correction
        self.combination_regularization = combination_regularization
        self.combination_ratio = _check_fraction(combination_ratio, "combination_ratio")
        self.stats = {"batches": 0, "images": 0, "correct_replaced": 0, "fallback_batches": 0, "combinations": 0}

    def num_combinations(self, n: int) -> int:
        """How many of a batch of n are combination images under PCR (0 without PCR)."""
        return round(self.combination_ratio * n) if self.combination_regularization else 0

    @torch.no_grad()
    def __call__(self, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not isinstance(fake, torch.Tensor) or fake.dim() != 4 or fake.shape[0] == 0:
            got = tuple(fake.shape) if isinstance(fake, torch.Tensor) else type(fake).__name__
            raise ValueError(f"fake: expected a non-empty batch of images (N, C, H, W), got {got}")
        n = fake.shape[0]
        out = fake
        self.stats["batches"] += 1
        self.stats["images"] += n
        if self.sample_correction:
            correct = self.dataset.is_correct(fake)
            fallback_needed = bool(correct.all())
            fallback = self.dataset.sample_combinations(n, generator, fake.device) if fallback_needed else None
            out = correct_replaced(fake, correct, fallback, generator)
            self.stats["correct_replaced"] += int(correct.sum())
            self.stats["fallback_batches"] += int(fallback_needed)
        m = self.num_combinations(n)
        if m:
            where = torch.randperm(n, generator=generator)[:m].to(fake.device)
            out = out.clone() if out is fake else out
            out[where] = self.dataset.sample_combinations(m, generator, fake.device).to(out)
            self.stats["combinations"] += m
        return out
