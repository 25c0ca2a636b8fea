"""The GAN trainer of the mode-dropping benchmarks, built from the package's public ops and modules
only: the 2D mixtures (grid25, ring8: the MLPs of networks.py) and the digit images (digits,
stacked-digits: the DCGAN generator and SN-GAN discriminator of image_networks.py, with ``hidden``
as their width). Every method trains the same generator and discriminator body with the same
optimiser, budget and seeds; what differs is what the method itself adds (``GANLoss``):

  standard   non-saturating GAN: D minimises the Bernoulli KL to targets 1 (real) / 0 (fake)
             per sample (``bernoulli_kl_loss`` with one set per sample: the binary cross-entropy),
             G minimises -log D (``batch_generator_loss``, eq. 5)
  minibatch  the same losses, improved-gan's minibatch discrimination layer before D's output
  mbstd      the same losses, a minibatch standard deviation feature before D's output
  pacgan     the same losses on packs of `packing` samples (PacGAN: each step draws `packing`
             times as many real and fake samples, so D sees batch_size packs, as in PacGAN's code)
  mixup      D on convex combinations lam * real + (1 - lam) * fake, lam ~ Beta(a, a) per sample,
             target lam (Zhang et al. 2017, section 3.8); G's loss is the standard one
  bgan       mixed batches (``MixedBatch``: batch smoothing-gamma, the complement batch reused so
             no sample is wasted), D made equivariant (eq. 12) over sets of ``set_size`` samples,
             KL loss with the BGAN reduction (eq. 13), G loss eq. 5 on mixed batches
  mbgan      the same with the M-BGAN reduction (eq. 14)
  microgan   K fresh copies of D, one per microbatch, eq. 2 of microGAN with alpha static or learned
             by G (microgan.py); alpha is recorded in the history

Every random draw comes from explicit torch.Generator objects seeded from ``config.seed`` and
saved in checkpoints, so a run is determined by its config, and resuming from a checkpoint
reproduces the uninterrupted run bit for bit on the CPU.
"""

import dataclasses
import time

import torch
import torch.distributed as dist

from ..distributed import check_local_sets
from ._extras import require
from .anomalous import NegativeBatch
from .checkpoint import load_checkpoint, save_checkpoint
from .datasets import DATASETS, make_dataset
from .digit_classifier import load_digit_classifier
from .image_datasets import IMAGE_DATASETS, make_image_dataset
from .image_metrics import image_mode_metrics
from .image_networks import make_image_discriminator, make_image_generator
from .metrics import mode_metrics
from .microgan import check_alpha
from .networks import METHODS, MIXED_METHODS, make_discriminator, make_generator
from .objectives import GANLoss
from .rectangles import RECTANGLE_DATASETS, make_rectangle_dataset, rectangle_metrics
from .techniques import HistoricalAveraging

__all__ = [
    "TrainConfig",
    "Trainer",
    "PRESETS",
    "PRESET_DATASET_VALUES",
    "preset_values",
    "PACKING_BY_DATASET",
    "TRAINING_DATASETS",
    "make_training_dataset",
]

TRAINING_DATASETS = (*sorted(DATASETS), *sorted(IMAGE_DATASETS), *sorted(RECTANGLE_DATASETS))


def make_training_dataset(name: str):
    """A 2D mixture (``DATASETS``) or a digit-image dataset (``IMAGE_DATASETS``) by name."""
    if name in IMAGE_DATASETS:
        return make_image_dataset(name)
    if name in RECTANGLE_DATASETS:  # the anomalous-generalization paper's geometry data (rectangles.py)
        return make_rectangle_dataset(name)
    if name in DATASETS:
        return make_dataset(name)
    raise ValueError(f"dataset: expected one of {TRAINING_DATASETS}, got {name!r}")


# The TrainConfig fields that must be positive integers (the CLI's integer options are these too).
POSITIVE_INT_FIELDS = (
    "steps",
    "n_disc",
    "batch_size",
    "set_size",
    "hidden",
    "g_layers",
    "d_layers",
    "latent_dim",
    "eval_samples",
    "minibatch_features",
    "minibatch_kernel_dims",
    "minibatch_set_size",
    "mbstd_group_size",
    "log_every",
    "num_discriminators",
)

# PacGAN's packing for each dataset when `packing` is 0: the degree of its Table 1 row for the 2D
# mixtures, PacDCGAN2 of its Table 2 (stacked MNIST) for the digits.
PACKING_BY_DATASET = {"grid25": 4, "ring8": 2, "digits": 2, "stacked-digits": 2, **dict.fromkeys(RECTANGLE_DATASETS, 2)}


def config_matches(stored, config: "TrainConfig") -> bool:
    """Whether a config dict stored in a result file or a checkpoint is ``config``. A field added
    after the file was written counts as its default, which keeps the earlier behaviour."""
    if not isinstance(stored, dict):
        return False
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    return {**defaults, **stored} == dataclasses.asdict(config)


@dataclasses.dataclass
class TrainConfig:
    dataset: str = "grid25"
    method: str = "mbgan"
    steps: int = 20000  # generator steps
    n_disc: int = 1  # discriminator steps per generator step
    batch_size: int = 128  # real (and fake) samples per step
    set_size: int = 32  # samples per set for bgan/mbgan (the batch holds batch_size/set_size sets)
    gamma: float = 0.5  # batch smoothing (section 3.1)
    lr: float = 2e-4  # Adam
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay: float = 0.5  # the learning rate falls linearly to 0 over this final fraction of the steps
    hidden: int = 128  # width of every hidden layer (images: the networks' base channel count)
    g_layers: int = 4  # generator hidden layers (PacGAN's 2D generator: 4, with batch norm; 2D only)
    d_layers: int = 3  # discriminator body hidden layers (PacGAN's: 3; 2D only)
    g_batch_norm: bool = True  # 2D only (the image generator is DCGAN's, with batch norm)
    packing: int = 0  # pacgan: samples per pack; 0 takes PACKING_BY_DATASET's
    mixup_alpha: float = 0.2  # mixup: lam ~ Beta(alpha, alpha) (Zhang et al.'s GAN experiment)
    minibatch_features: int = 32  # minibatch discrimination: B kernels ...
    minibatch_kernel_dims: int = 5  # ... of C dimensions each (improved-gan's dim_per_kernel)
    minibatch_set_size: int = 64  # ... comparing each sample with the others of its set of this many
    mbstd_group_size: int = 4  # StyleGAN's default group
    latent_dim: int = 2
    seed: int = 0
    eval_samples: int = 2500
    log_every: int = 10  # generator steps between loss records
    # microGAN (microgan.py): K discriminators, one per microbatch; alpha static or learned by G (eq. 2-3)
    num_discriminators: int = 2
    alpha: float | None = None  # static: its value in [0, 1]; learned: the initial alpha (None: paper's beta_0)
    alpha_schedule: str = "sigmoid"  # static, sigmoid, softsign or tanh
    # Salimans et al. (2016)'s techniques (GANLoss options; historical averaging: techniques.HistoricalAveraging)
    one_sided_smoothing: bool = False  # D's real target 0.9 (section 3.4)
    feature_matching: bool = False  # G's loss: feature matching on D's last hidden features (section 3.1)
    historical_averaging: float = 0.0  # weight of the historical averaging penalty of D and G (section 3.3); 0: off
    # "On the Anomalous Generalization of GANs" (section 5.1; rectangle datasets only: anomalous.NegativeBatch)
    sample_correction: bool = False  # SC: D's negatives without the already-correct generated images
    combination_regularization: bool = False  # PCR: pixel-wise AND/OR of training pairs as extra negatives
    combination_ratio: float = 0.5  # PCR: fraction of D's fake batch that is combination images (eq. 13's 1/2)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        if self.dataset not in TRAINING_DATASETS:  # by name: building a digits dataset loads and splits the images
            raise ValueError(f"dataset: expected one of {TRAINING_DATASETS}, got {self.dataset!r}")
        for name in POSITIVE_INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if isinstance(self.packing, bool) or not isinstance(self.packing, int) or self.packing < 0:
            raise ValueError(f"packing: expected a positive integer or 0 (the dataset's default), got {self.packing!r}")
        for name in ("g_batch_norm", "one_sided_smoothing", "feature_matching"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected a bool, got {getattr(self, name)!r}")
        weight = self.historical_averaging
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight < float("inf"):
            raise ValueError(f"historical_averaging: expected a finite weight >= 0 (0: off), got {weight!r}")
        if self.method in MIXED_METHODS and self.batch_size % self.set_size != 0:
            raise ValueError(
                f"set_size: batch_size={self.batch_size} does not split into sets of {self.set_size} samples"
            )
        check_alpha(self.alpha_schedule, self.alpha)
        if self.method == "microgan" and (self.num_discriminators < 2 or self.batch_size % self.num_discriminators):
            raise ValueError(
                f"num_discriminators: expected at least 2 microbatches that divide batch_size={self.batch_size}, "
                f"got {self.num_discriminators}"
            )
        if self.method == "minibatch" and self.batch_size % self.minibatch_set_size != 0:
            raise ValueError(
                f"minibatch_set_size: batch_size={self.batch_size} does not split into sets of "
                f"{self.minibatch_set_size} samples"
            )
        if self.method == "mbstd" and self.batch_size % min(self.mbstd_group_size, self.batch_size) != 0:
            raise ValueError(
                f"mbstd_group_size: batch_size={self.batch_size} does not split into groups of {self.mbstd_group_size}"
            )
        if not 0.0 <= self.gamma <= 0.5:
            raise ValueError(f"gamma: expected a value in [0, 0.5], got {self.gamma!r}")
        if not 0.0 <= self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay: expected a fraction in [0, 1], got {self.lr_decay!r}")
        for name in ("lr", "mixup_alpha"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and value < float("inf")):
                raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ValueError(f"{name}: expected a value in [0, 1), got {value!r}")
        for name in ("sample_correction", "combination_regularization"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected a bool, got {getattr(self, name)!r}")
            if getattr(self, name) and self.dataset not in RECTANGLE_DATASETS:
                raise ValueError(
                    f"{name}: needs a rectangles dataset ({sorted(RECTANGLE_DATASETS)}), got {self.dataset!r}"
                )
        ratio = self.combination_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio < 1.0:
            raise ValueError(f"combination_ratio: expected a fraction in (0, 1), got {ratio!r}")

    @property
    def effective_packing(self) -> int:
        return self.packing or PACKING_BY_DATASET[self.dataset]

    @property
    def is_image(self) -> bool:
        return self.dataset in IMAGE_DATASETS or self.dataset in RECTANGLE_DATASETS


# `results` is the README table's budget (every method, several seeds: python -m batchgan_ext.train.sweep):
# PacGAN's 2D networks made narrower (128 units: a 400-unit G with a 200x5 maxout D costs 68 ms a step
# on one core here, so 400k steps were out of reach) with Adam at lr 5e-4, beta1 0.5 on batches of
# 256 and a linear decay over the second half, which is what lifted the standard GAN's high-quality
# fraction above 90% (docs: README, "What was tried"). `demo` is the main job's preview of it (fewer
# steps); `paper` the BGAN paper's 2D setup (section 5.1: 512-unit networks, n_disc=5, Adam's defaults,
# 20,000 generator steps; about an hour per run here). `image-results` and `image-demo` are the digit
# images' budgets: DCGAN's Adam (lr 2e-4, beta1 0.5) on batches of 64 (sets of 16), latent size 64,
# networks of base width 16 (SN-GAN's is 64; a quarter keeps a run within minutes on this CPU), and
# 10,000 samples scored (PacGAN scores 26,000; 10,000 = 10 per mode).
IMAGE_PRESET = dict(batch_size=64, set_size=16, lr=2e-4, hidden=16, latent_dim=64, eval_samples=10000, log_every=5)
PRESETS: dict[str, dict] = {
    "results": dict(steps=20000, batch_size=256, lr=5e-4),
    "demo": dict(steps=2500, batch_size=256, lr=5e-4),
    "paper": dict(
        steps=20000,
        n_disc=5,
        batch_size=128,
        set_size=32,
        hidden=512,
        g_layers=3,
        lr=1e-3,
        beta1=0.9,
        lr_decay=0.0,
        g_batch_norm=False,
    ),
    # Two discriminator steps per generator step: on seed 10, kept apart from the table, they took
    # the standard GAN from 954 to 995 modes and M-BGAN from 955 to 988 (docs: README, "Image GANs").
    "image-results": dict(IMAGE_PRESET, steps=2000, n_disc=2),
    "image-demo": dict(IMAGE_PRESET, steps=150, eval_samples=2000, n_disc=2),
}
# A preset's values for one dataset, over the values above. grid25 takes two discriminator steps per
# generator step in `results` and `demo`: with one, every batch method stayed at 82-84% high quality
# (M-BGAN seed 0: 81.4%); with two, 97.0%, and D keeps ahead of G on the 25 tight modes. Its `results`
# runs take 40,000 generator steps: at 20,000 the batch methods' fraction stayed at 88-91% on seeds
# kept apart from the table, and M-BGAN's seed 11 went from 88.2% to 94.0% with 40,000 (docs: README,
# "What was tried"). ring8's rows were trained with 20,000 and n_disc 1 and met its targets (8/8
# strict, >= 95%).
PRESET_DATASET_VALUES: dict[str, dict[str, dict]] = {
    "results": {"grid25": dict(n_disc=2, steps=40000)},
    "demo": {"grid25": dict(n_disc=2)},
}


def preset_values(preset: str, dataset: str) -> dict:
    """The TrainConfig values of ``preset`` for ``dataset`` (the dataset included)."""
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    return dict(PRESETS[preset], **PRESET_DATASET_VALUES.get(preset, {}).get(dataset, {}), dataset=dataset)


CHECKPOINT_KEYS = (
    "config",
    "step",
    "generator",
    "discriminator",
    "opt_g",
    "opt_d",
    "rng_data",
    "rng_noise",
    "rng_mix",
    "history",
    "train_seconds",
)


class _NoProgress:
    """Stands in for the tqdm bar when progress is off, so that training needs no tqdm then."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


class Trainer:
    def __init__(self, config: TrainConfig, device: torch.device | None = None):
        config.validate()
        self.config = config
        self.device = torch.device(device or "cpu")
        self.dataset = make_training_dataset(config.dataset)
        self.packing = config.effective_packing if config.method == "pacgan" else 1
        # Data-parallel training under torchrun (an initialised process group): each rank trains on
        # its shard of every global batch of batch_size, with whole sets on each rank (layout (a) of
        # batchgan_ext.distributed) and DDP averaging the gradients.
        distributed = dist.is_available() and dist.is_initialized()
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        self.shard = (self.rank, self.world_size) if self.world_size > 1 else None
        if self.world_size > 1:
            self._check_shardable()
        self.loss = GANLoss(
            config.method,
            set_size=config.set_size,
            gamma=config.gamma,
            packing=self.packing,
            mixup_alpha=config.mixup_alpha,
            minibatch_features=config.minibatch_features,
            minibatch_kernel_dims=config.minibatch_kernel_dims,
            minibatch_set_size=config.minibatch_set_size,
            mbstd_group_size=config.mbstd_group_size,
            one_sided_smoothing=config.one_sided_smoothing,
            feature_matching=config.feature_matching,
            num_discriminators=config.num_discriminators,
            alpha=config.alpha,
            alpha_schedule=config.alpha_schedule,
        )
        # Parameter initialisation is seeded without touching the global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if config.is_image:
                channels = self.dataset.channels
                self.generator = make_image_generator(config.latent_dim, channels, config.hidden).to(self.device)
                body = make_image_discriminator(channels, config.hidden).to(self.device)
                self.discriminator = self.loss.convert_discriminator(body)
            else:
                self.generator = make_generator(
                    config.latent_dim, config.hidden, config.g_layers, batch_norm=config.g_batch_norm
                ).to(self.device)
                self.discriminator = make_discriminator(
                    "standard" if config.method == "microgan" else config.method,
                    hidden=config.hidden,
                    layers=config.d_layers,
                    set_size=config.set_size,
                    packing=self.packing,
                    minibatch_features=config.minibatch_features,
                    minibatch_kernel_dims=config.minibatch_kernel_dims,
                    minibatch_set_size=config.minibatch_set_size,
                    mbstd_group_size=config.mbstd_group_size,
                ).to(self.device)
                if config.method == "microgan":  # K fresh copies of the standard D
                    self.discriminator = self.loss.convert_discriminator(self.discriminator)
        init_rng = torch.Generator().manual_seed(config.seed * 4)
        self.loss.initialize(self.discriminator, self.dataset.sample(config.batch_size, init_rng, device=self.device))
        betas = (config.beta1, config.beta2)
        if self.loss.alpha_module is not None:  # microgan: a learned alpha's beta is G's parameter
            self.loss.alpha_module.to(self.device)
        g_parameters = [*self.generator.parameters(), *self.loss.alpha_parameters()]
        self.opt_g = torch.optim.Adam(g_parameters, lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
        # Historical averaging of both players' parameters (improved-gan applies it to D and G).
        self.historical = (
            {
                "discriminator": HistoricalAveraging(self.discriminator, config.historical_averaging),
                "generator": HistoricalAveraging(self.generator, config.historical_averaging),
            }
            if config.historical_averaging > 0
            else {}
        )
        # Separate streams, so that e.g. changing n_disc does not shift the evaluation noise.
        self.rng_data = torch.Generator().manual_seed(config.seed * 4 + 1)
        self.rng_noise = torch.Generator().manual_seed(config.seed * 4 + 2)
        self.rng_mix = torch.Generator().manual_seed(config.seed * 4 + 3)
        # SC / PCR change D's fake batch (anomalous.py); their draws come from rng_mix, which checkpoints keep.
        self.negatives = (
            NegativeBatch(
                self.dataset, config.sample_correction, config.combination_regularization, config.combination_ratio
            )
            if config.sample_correction or config.combination_regularization
            else None
        )
        self.step = 0
        self.history: dict[str, list[float]] = {"step": [], "loss_d": [], "loss_g": []}
        if config.method == "microgan":
            self.history["alpha"] = []
        self.train_seconds = 0.0
        if self.world_size > 1:
            self.loss._check_shard(self.shard)
            ddp = torch.nn.parallel.DistributedDataParallel
            self._g_train, self._d_train = ddp(self.generator), ddp(self.discriminator)
        else:
            self._g_train, self._d_train = self.generator, self.discriminator

    def _check_shardable(self) -> None:
        """Each rank's shard of the global batch must hold whole sets (packs, groups) of the method."""
        cfg, world = self.config, self.world_size
        if cfg.batch_size % world != 0:
            raise ValueError(f"batch_size: {cfg.batch_size} does not split into {world} equal per-rank batches")
        local = cfg.batch_size // world
        if cfg.method in MIXED_METHODS:
            check_local_sets(local, cfg.set_size)
        elif cfg.method == "minibatch":
            check_local_sets(local, cfg.minibatch_set_size)
        elif cfg.method == "mbstd":
            check_local_sets(local, min(cfg.mbstd_group_size, local))
        if cfg.sample_correction or cfg.combination_regularization:
            raise ValueError(
                "sample_correction, combination_regularization: their draws depend on each rank's generated "
                "images, which sharded training does not support yet; train them in one process"
            )

    # ---------------------------------------------------------------------------------------
    # one step

    @property
    def samples_per_step(self) -> int:
        """Real (and fake) samples drawn per discriminator or generator step."""
        return self.config.batch_size * self.packing

    def _shard_of(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch (all of it in one process)."""
        n = x.shape[0] // self.world_size
        return x[self.rank * n : (self.rank + 1) * n]

    # Every rank draws the global batch from the same streams and keeps its shard: sampling is
    # cheap next to the networks, and a run then depends on its config only, not on the world size.
    def _real(self) -> torch.Tensor:
        return self._shard_of(self.dataset.sample(self.samples_per_step, self.rng_data, device=self.device))

    def _noise(self, n: int) -> torch.Tensor:
        noise = torch.randn(n, self.config.latent_dim, generator=self.rng_noise).to(self.device)
        return self._shard_of(noise)

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return self.loss.discriminator_loss(self._d_train, real, fake, generator=self.rng_mix, shard=self.shard)

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        # D outside its DDP wrapper: its gradients from G's step are discarded, so not all-reduced.
        return self.loss.generator_loss(self.discriminator, real, fake, generator=self.rng_mix, shard=self.shard)

    def learning_rate(self, step: int) -> float:
        """The learning rate of generator step `step` (0-based): constant, then a linear decay to 0
        over the final `lr_decay` fraction of the steps (it sharpens the samples onto the modes)."""
        cfg = self.config
        decay_steps = cfg.lr_decay * cfg.steps
        remaining = cfg.steps - step
        if decay_steps <= 0 or remaining >= decay_steps:
            return cfg.lr
        return cfg.lr * max(remaining, 0) / decay_steps

    def discriminator_step(self) -> torch.Tensor:
        """One discriminator update on a fresh real batch and a fresh fake batch (G not updated)."""
        real = self._real()
        with torch.no_grad():
            fake = self.generator(self._noise(self.samples_per_step))
            if self.negatives is not None:
                fake = self.negatives(fake, generator=self.rng_mix)
        loss_d = self.discriminator_loss(real, fake)
        self.opt_d.zero_grad(set_to_none=True)
        # The recorded loss is the GAN loss; the historical averaging penalty only joins the gradient.
        (loss_d + self.historical["discriminator"].penalty() if self.historical else loss_d).backward()
        self.opt_d.step()
        if self.historical:
            self.historical["discriminator"].update()
        return loss_d.detach()

    def train_step(self) -> dict[str, float]:
        """n_disc discriminator steps, then one generator step."""
        cfg = self.config
        lr = self.learning_rate(self.step)
        for optimizer in (self.opt_d, self.opt_g):
            for group in optimizer.param_groups:
                group["lr"] = lr
        for _ in range(cfg.n_disc):
            loss_d = self.discriminator_step()
        real = self._real()
        fake = self._g_train(self._noise(self.samples_per_step))
        loss_g = self.generator_loss(real, fake)
        self.opt_g.zero_grad(set_to_none=True)
        (loss_g + self.historical["generator"].penalty() if self.historical else loss_g).backward()
        self.opt_g.step()
        if self.historical:
            self.historical["generator"].update()
        self.step += 1
        out = {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach())}
        if self.step % cfg.log_every == 0 or self.step == 1:
            self.history["step"].append(self.step)
            self.history["loss_d"].append(out["loss_d"])
            self.history["loss_g"].append(out["loss_g"])
            if "alpha" in self.history:
                self.history["alpha"].append(self.loss.alpha())
        return out

    # ---------------------------------------------------------------------------------------
    # loop, evaluation, checkpoints

    def train(
        self,
        steps: int | None = None,
        progress: bool = True,
        checkpoint_path: str | None = None,
        checkpoint_every: int = 0,
        description: str | None = None,
    ) -> None:
        """Trains until `steps` generator steps in total (default: config.steps)."""
        total = self.config.steps if steps is None else steps
        bar = (
            require("tqdm", "the progress bar (progress=False runs without it)").tqdm(
                total=total,
                initial=self.step,
                desc=description or f"{self.config.method}/{self.config.dataset}",
                dynamic_ncols=True,
                mininterval=1.0,
            )
            if progress and self.rank == 0  # one bar per run, not one per rank
            else _NoProgress()
        )
        start = time.perf_counter()
        try:
            while self.step < total:
                losses = self.train_step()
                bar.update(1)
                if self.step % 25 == 0:
                    bar.set_postfix(loss_d=f"{losses['loss_d']:.4f}", loss_g=f"{losses['loss_g']:.4f}")
                if checkpoint_path and checkpoint_every and self.step % checkpoint_every == 0:
                    self.train_seconds += time.perf_counter() - start
                    start = time.perf_counter()
                    self.save(checkpoint_path)
        finally:
            self.train_seconds += time.perf_counter() - start
            bar.close()
        if checkpoint_path:
            self.save(checkpoint_path)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 12345) -> torch.Tensor:
        """n samples of the generator in eval mode (batch norm with its running statistics)."""
        noise = torch.randn(n, self.config.latent_dim, generator=torch.Generator().manual_seed(seed))
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(noise.to(self.device)).cpu()
        finally:
            self.generator.train(was_training)

    def evaluate(self, n: int | None = None) -> dict:
        samples = self.sample(n or self.config.eval_samples)
        if self.config.dataset in RECTANGLE_DATASETS:
            return rectangle_metrics(samples, self.dataset)
        if self.config.is_image:
            return image_mode_metrics(samples, self.dataset, load_digit_classifier())
        return mode_metrics(samples, self.dataset.means, self.dataset.std)

    def state_dict(self) -> dict:
        """Tensors, plain containers and numbers only, so that checkpoints load with weights_only=True."""
        return {
            "config": dataclasses.asdict(self.config),
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng_data": self.rng_data.get_state(),
            "rng_noise": self.rng_noise.get_state(),
            "rng_mix": self.rng_mix.get_state(),
            "history": self.history,
            "train_seconds": self.train_seconds,
            "historical_averaging": {name: h.state_dict() for name, h in self.historical.items()},
            "alpha_schedule": {} if self.loss.alpha_module is None else self.loss.alpha_module.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        missing = sorted(set(CHECKPOINT_KEYS) - set(state))
        if missing:
            raise ValueError(f"checkpoint: not a batchgan_ext.train checkpoint (missing {', '.join(missing)})")
        if not config_matches(state["config"], self.config):
            raise ValueError("checkpoint: it was written by a run with a different configuration")
        self.step = state["step"]
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng_data.set_state(state["rng_data"])
        self.rng_noise.set_state(state["rng_noise"])
        self.rng_mix.set_state(state["rng_mix"])
        self.history = state["history"]
        self.train_seconds = state["train_seconds"]
        if self.loss.alpha_module is not None:
            if not state.get("alpha_schedule"):
                raise ValueError("checkpoint: a microgan run's checkpoint must hold its alpha_schedule state")
            self.loss.alpha_module.load_state_dict(state["alpha_schedule"])
        if self.historical:
            if not state.get("historical_averaging"):
                raise ValueError("checkpoint: historical_averaging > 0 but the checkpoint holds no running means")
            for name, averaging in self.historical.items():
                averaging.load_state_dict(state["historical_averaging"][name])

    def save(self, path: str) -> None:
        """Atomically: a crash during the save leaves the previous checkpoint at `path` intact. Under
        torchrun rank 0 writes it (every rank holds the same state, random streams included) and the
        others wait for it, so that all of them can resume from it."""
        if self.rank == 0:
            save_checkpoint(self.state_dict(), path)
        if self.world_size > 1:
            dist.barrier()

    @classmethod
    def from_checkpoint(cls, path: str, device: torch.device | None = None) -> "Trainer":
        state = load_checkpoint(path)
        if not isinstance(state.get("config"), dict):
            raise ValueError(f"checkpoint: {path} is not a batchgan_ext.train checkpoint (no config dict)")
        try:
            config = TrainConfig(**state["config"])
        except TypeError as error:
            raise ValueError(f"checkpoint: {path} has a config this version does not know: {error}") from error
        trainer = cls(config, device=device)
        trainer.load_state_dict(state)
        return trainer
