"""Networks of the BGAN paper's 2D experiment (section 5.1): generator and discriminators are
ReLU MLPs (3 hidden layers of 512 units in the paper preset), 2-D standard Gaussian latent.

Discriminators by method:
  standard   MLP -> one logit per sample
  minibatch  MLP whose last hidden features go through MinibatchDiscrimination (Salimans et al.)
             before the output layer
  bgan/mbgan EquivariantLinear layers (eq. 12, sets of `set_size` samples) -> one logit per
             sample; the set-mean of eq. 10 is taken by the loss (bernoulli_kl_loss, mode
             'bgan') or the loss is averaged per sample ('mbgan', eq. 14)
"""

from torch import nn

from .. import EquivariantLinear, MinibatchDiscrimination

__all__ = ["make_generator", "make_discriminator", "METHODS"]

METHODS = ("standard", "minibatch", "bgan", "mbgan")


def _mlp(in_features: int, hidden: int, layers: int, out_features: int) -> nn.Sequential:
    modules = []
    width = in_features
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    modules.append(nn.Linear(width, out_features))
    return nn.Sequential(*modules)


def make_generator(latent_dim: int = 2, hidden: int = 512, layers: int = 3, out_features: int = 2) -> nn.Module:
    return _mlp(latent_dim, hidden, layers, out_features)


def make_discriminator(
    method: str,
    in_features: int = 2,
    hidden: int = 512,
    layers: int = 3,
    set_size: int = 32,
    minibatch_features: int = 64,
    minibatch_kernel_dims: int = 16,
) -> nn.Module:
    if method == "standard":
        return _mlp(in_features, hidden, layers, 1)
    if method == "minibatch":
        body = _mlp(in_features, hidden, layers - 1, hidden)
        return nn.Sequential(
            *body,
            nn.ReLU(),
            MinibatchDiscrimination(hidden, minibatch_features, minibatch_kernel_dims),
            nn.Linear(hidden + minibatch_features, 1),
        )
    if method in ("bgan", "mbgan"):
        modules = []
        width = in_features
        for _ in range(layers):
            modules.append(EquivariantLinear(width, hidden, set_size=set_size, activation="relu"))
            width = hidden
        modules.append(EquivariantLinear(width, 1, set_size=set_size))
        return nn.Sequential(*modules)
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
