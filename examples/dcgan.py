"""A DCGAN (Radford et al., 2016) on stacked digits, written as users write their own training
scripts: their networks, data loader, optimisers and loop. ``dcgan.py`` is the plain GAN;
``dcgan_mbgan.py`` is the same script converted to M-BGAN with batchgan_ext (run
``diff examples/dcgan.py examples/dcgan_mbgan.py`` to see the lines that change).

    python examples/dcgan.py --steps 2000 --out samples.png

Data: scikit-learn's bundled 8x8 digits at 32x32, three random digits as the three channels
(1,000 modes, as stacked MNIST). At the end the samples are scored with the package's digit
classifier: modes covered of 1,000, KL to uniform, Fréchet distance in its feature space.
"""

import argparse

import torch
from torch import nn

from batchgan_ext.train.digit_classifier import load_digit_classifier
from batchgan_ext.train.image_datasets import make_image_dataset
from batchgan_ext.train.image_metrics import image_mode_metrics


class Generator(nn.Module):
    def __init__(self, latent_dim=64, width=64, channels=3):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, width * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(width * 4), nn.ReLU(True),
            nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(True),
            nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
            nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z):
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, width=64, channels=3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2),
            nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 4), nn.LeakyReLU(0.2),
            nn.Conv2d(width * 4, 1, 4, 1, 0),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x).view(-1)  # one logit per image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=32, help="channels of the first conv (DCGAN: 64)")
    parser.add_argument("--eval-samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="save an 8x8 grid of samples to this PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    data = make_image_dataset("stacked-digits")
    loader = torch.utils.data.DataLoader(data.sample(50000), args.batch_size, shuffle=True, drop_last=True)
    latent_dim = 64

    G = Generator(latent_dim, args.width)
    bce = nn.BCEWithLogitsLoss()
    D = Discriminator(args.width)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))

    step = 0
    while step < args.steps:
        for real in loader:
            fake = G(torch.randn(real.shape[0], latent_dim))

            loss_d = bce(D(real), torch.ones(len(real))) + bce(D(fake.detach()), torch.zeros(len(real)))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()

            loss_g = bce(D(fake), torch.ones(len(real)))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()

            step += 1
            if step % 100 == 0 or step == args.steps:
                print(f"step {step:5d}  loss_d {loss_d.item():.4f}  loss_g {loss_g.item():.4f}", flush=True)
            if step == args.steps:
                break

    G.eval()
    with torch.no_grad():
        samples = torch.cat([G(torch.randn(1000, latent_dim)) for _ in range(-(-args.eval_samples // 1000))])
    metrics = image_mode_metrics(samples[: args.eval_samples], data, load_digit_classifier())
    print(
        f"modes covered {metrics['modes_covered']} of {metrics['num_modes']}, KL {metrics['reverse_kl']:.3f}, "
        f"Fréchet distance {metrics['frechet_distance']:.3f} ({metrics['num_samples']} samples)"
    )
    if args.out:
        import matplotlib.pyplot as plt

        grid = samples[:64].view(8, 8, 3, 32, 32).permute(0, 3, 1, 4, 2).reshape(256, 256, 3)
        plt.imsave(args.out, ((grid + 1) / 2).clamp(0, 1).numpy())


if __name__ == "__main__":
    main()
