"""Networks of the 2D benchmark. Every method trains the same generator against the same
discriminator body; only what the method itself adds differs.

  generator   latent (2-D standard Gaussian) -> `layers` ReLU layers of `hidden` units, each with
              batch norm as in PacGAN's 2D generator -> 2-D sample
  D body      `layers` Linear + ReLU layers of `hidden` units (a plain MLP, so that
              make_equivariant can turn it into eq. 12's layers)

Discriminators by method:
  standard   body -> Linear: one logit per sample
  mixup      the same network (mixup changes the data D sees, not D)
  pacgan     body on `packing` samples concatenated (PacGAN, Lin et al. 2018) -> one logit per pack
  minibatch  body -> MinibatchDiscrimination configured as improved-gan's MinibatchLayer (T ~ N(0,
             0.05), learned bias, rescaled from the first batch: `GANLoss.initialize`; each sample
             compared with the others of its set of `minibatch_set_size` samples, since its O(N^2) cost over
             a whole batch of 256 would make it 7x the other methods' step) -> Linear
  mbstd      body -> MinibatchStdDev (groups of 4, Karras et al. 2018) -> Linear
  bgan/mbgan the standard network through make_equivariant(reduce=None): EquivariantLinear layers
             (eq. 12) over sets of `set_size` samples, one logit per sample; the loss reduces them
             (bernoulli_kl_loss mode 'bgan': set mean of eq. 10/13; 'mbgan': eq. 14)
"""

from torch import nn

from .. import MinibatchDiscrimination, MinibatchStdDev, Pack, make_equivariant
from .objectives import METHODS, MINIBATCH_INIT_STD, MIXED_METHODS

__all__ = ["make_generator", "make_discriminator", "METHODS", "MIXED_METHODS"]


def _body(in_features: int, hidden: int, layers: int) -> list[nn.Module]:
    modules: list[nn.Module] = []
    width = in_features
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return modules


def make_generator(
    latent_dim: int = 2, hidden: int = 128, layers: int = 4, out_features: int = 2, batch_norm: bool = True
) -> nn.Module:
    modules: list[nn.Module] = []
    width = latent_dim
    for _ in range(layers):
        modules.append(nn.Linear(width, hidden))
        if batch_norm:
            modules.append(nn.BatchNorm1d(hidden))
        modules.append(nn.ReLU())
        width = hidden
    modules.append(nn.Linear(width, out_features))
    return nn.Sequential(*modules)


def make_discriminator(
    method: str,
    in_features: int = 2,
    hidden: int = 128,
    layers: int = 3,
    set_size: int = 32,
    packing: int = 4,
    minibatch_features: int = 32,
    minibatch_kernel_dims: int = 5,
    minibatch_set_size: int = 64,
    mbstd_group_size: int = 4,
) -> nn.Module:
    if method in ("standard", "mixup"):
        return nn.Sequential(*_body(in_features, hidden, layers), nn.Linear(hidden, 1))
    if method == "pacgan":
        return nn.Sequential(Pack(packing), *_body(in_features * packing, hidden, layers), nn.Linear(hidden, 1))
    if method == "minibatch":
        return nn.Sequential(
            *_body(in_features, hidden, layers),
            MinibatchDiscrimination(
                hidden,
                minibatch_features,
                minibatch_kernel_dims,
                set_size=minibatch_set_size,
                bias=True,
                init_std=MINIBATCH_INIT_STD,
            ),
            nn.Linear(hidden + minibatch_features, 1),
        )
    if method == "mbstd":
        return nn.Sequential(
            *_body(in_features, hidden, layers), MinibatchStdDev(mbstd_group_size), nn.Linear(hidden + 1, 1)
        )
    if method in MIXED_METHODS:
        plain = nn.Sequential(*_body(in_features, hidden, layers), nn.Linear(hidden, 1))
        return make_equivariant(plain, set_size, reduce=None)
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
