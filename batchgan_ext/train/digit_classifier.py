"""The evaluation classifier of the digits datasets: a small CNN trained by the package on the
training split the first time it is needed, then cached on disk.

Its two uses are the literature's offline measures of an image GAN (stacked MNIST in VEEGAN and
PacGAN, Table 2): the class of each channel of a generated image gives the image's mode, and its
penultimate layer is the feature space of a Fréchet distance (FID's formula with this classifier
in place of Inception).

Training is seeded and single-threaded, so the same torch build gives the same weights; the cache
file's name carries RECIPE, so a change of architecture or recipe never loads stale weights. The
cache folder is ``$BATCHGAN_CACHE_DIR`` or ``~/.cache/batchgan_ext``.
"""

import os

import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import load_checkpoint, save_checkpoint
from .image_datasets import load_digit_images

__all__ = ["DigitClassifier", "accuracy", "cache_dir", "load_digit_classifier", "train_digit_classifier", "RECIPE"]

RECIPE = "pool2-cnn32-64-fc128-adam1e-3-e20-b64-seed0"  # in the cache file's name: bump when anything below changes
FEATURES = 128
EPOCHS = 20
BATCH_SIZE = 64
SEED = 0


class DigitClassifier(nn.Module):
    """(N, 1, 32, 32) in [-1, 1] -> 10 class logits; ``features`` gives the 128-d penultimate layer."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.AvgPool2d(2),  # 16 x 16: the images are 8 x 8 digits upsampled, so no detail is lost
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8 x 8
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4 x 4
            nn.Flatten(),
            nn.Linear(64 * 16, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def cache_dir() -> str:
    return os.environ.get("BATCHGAN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "batchgan_ext")


def train_digit_classifier() -> DigitClassifier:
    """Trains the classifier on the training split (seeded, one thread); ~25 s of CPU time here."""
    images, labels = load_digit_images("train")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            model = DigitClassifier()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            order_rng = torch.Generator().manual_seed(SEED)
            for _ in range(EPOCHS):
                order = torch.randperm(len(images), generator=order_rng)
                for start in range(0, len(images), BATCH_SIZE):
                    index = order[start : start + BATCH_SIZE]
                    loss = F.cross_entropy(model(images[index]), labels[index])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def load_digit_classifier(path: str | None = None) -> DigitClassifier:
    """The cached classifier (in eval mode, on the CPU), trained and cached first if absent."""
    path = path or os.path.join(cache_dir(), f"digit_classifier-{RECIPE}.pt")
    model = DigitClassifier()
    if os.path.exists(path):
        state = load_checkpoint(path)
        try:
            model.load_state_dict(state)
        except (RuntimeError, KeyError) as error:  # other keys or shapes: a file of another model
            raise ValueError(
                f"digit classifier cache: {path} is not a state_dict of this classifier; delete it to retrain ({error})"
            ) from error
        return model.eval()
    model = train_digit_classifier()
    save_checkpoint(model.state_dict(), path)
    return model


@torch.no_grad()
def accuracy(model: DigitClassifier, split: str = "test") -> float:
    images, labels = load_digit_images(split)
    return float((model(images).argmax(1) == labels).float().mean())
