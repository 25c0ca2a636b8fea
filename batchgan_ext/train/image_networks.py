"""Networks for 32x32 images with C channels (1 for digits, 3 for stacked digits).

generator      the DCGAN generator (Radford et al., 2016) in SN-GAN's form (Miyato et al., 2018,
               Table 3a): z -> Linear -> 4x4 maps of 8*width channels -> three stride-2
               ConvTranspose2d + BatchNorm + ReLU up to 32x32 of `width` channels -> 3x3 conv to C,
               tanh
discriminator  SN-GAN's "standard CNN" (Miyato et al., 2018, Table 3b): seven nn.Conv2d + LeakyReLU(0.1)
               of width, width, 2, 2, 4, 4, 8 x width channels (3x3 stride 1, then 4x4 stride 2 down
               to 4x4), nn.Flatten and an nn.Linear to one logit; spectral norm on every layer, no
               BatchNorm. Plain layers in an nn.Sequential, so that make_equivariant (BGAN paper,
               section 4.3) and every GANLoss method's convert_discriminator can rebuild it.
"""

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

__all__ = ["make_image_generator", "make_image_discriminator"]

SNGAN_SLOPE = 0.1  # SN-GAN's discriminators use LeakyReLU(0.1)
BOTTOM_SIZE = 4  # the generator starts from, and the discriminator ends at, 4x4 feature maps


def make_image_generator(latent_dim: int = 128, channels: int = 3, width: int = 64) -> nn.Module:
    """(N, latent_dim) -> (N, channels, 32, 32) in [-1, 1]."""
    modules: list[nn.Module] = [
        nn.Linear(latent_dim, 8 * width * BOTTOM_SIZE * BOTTOM_SIZE),
        nn.Unflatten(1, (8 * width, BOTTOM_SIZE, BOTTOM_SIZE)),
        nn.BatchNorm2d(8 * width),
        nn.ReLU(),
    ]
    for c_in, c_out in ((8 * width, 4 * width), (4 * width, 2 * width), (2 * width, width)):
        modules += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
    modules += [nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh()]
    return nn.Sequential(*modules)


def make_image_discriminator(channels: int = 3, width: int = 64, spectral_norm: bool = True) -> nn.Module:
    """(N, channels, 32, 32) -> (N, 1) logits: SN-GAN's standard CNN discriminator, scaled by `width`."""
    wrap = _spectral_norm if spectral_norm else (lambda layer: layer)
    modules: list[nn.Module] = []
    c_in = channels
    for c_out in (width, 2 * width, 4 * width):
        modules += [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.LeakyReLU(SNGAN_SLOPE)]
        modules += [nn.Conv2d(c_out, c_out, 4, 2, 1), nn.LeakyReLU(SNGAN_SLOPE)]  # halves the size
        c_in = c_out
    modules += [nn.Conv2d(c_in, 8 * width, 3, 1, 1), nn.LeakyReLU(SNGAN_SLOPE)]
    modules += [nn.Flatten(), nn.Linear(8 * width * BOTTOM_SIZE * BOTTOM_SIZE, 1)]
    return nn.Sequential(*(wrap(m) if isinstance(m, (nn.Conv2d, nn.Linear)) else m for m in modules))
