"""The losses of every method for the user's own generator and discriminator.

A :class:`GANLoss` holds a method and its options; the user keeps their networks, optimisers and
loop, and calls three things::

    gan = GANLoss("mbgan", set_size=16)           # the set structure, declared once
    D = gan.convert_discriminator(my_discriminator)  # eq. 12 layers over sets of 16 (other methods: their layer)
    gan.initialize(D, first_real_batch)           # data-dependent init where a method has one
    ...
    loss_d = gan.discriminator_loss(D, real, G(z).detach())
    loss_g = gan.generator_loss(D, real, G(z))    # the batch methods' G loss needs real samples too

Methods (the 2D trainer's, with the same losses):
  standard   per-sample Bernoulli KL to 1 (real) / 0 (fake), i.e. the binary cross-entropy; G: -log D
  minibatch  standard losses; D gets improved-gan's minibatch discrimination before its last nn.Linear
  mbstd      standard losses; D gets a minibatch standard deviation feature before its last layer
  pacgan     standard losses on packs of ``packing`` consecutive samples (D's first layer takes
             ``packing`` times its inputs); the batch must split into packs
  mixup      D on lam * real + (1 - lam) * fake, lam ~ Beta(mixup_alpha, mixup_alpha), target lam
  bgan       mixed batches of sets of ``set_size`` (batch smoothing-gamma, the complement reused),
             D made equivariant (eq. 12) with per-sample logits, the loss averages each set (eq. 13)
  mbgan      the same, the sigmoid per sample against its set's ratio (eq. 14)
  microgan   K independent copies of D, each on its microbatch (B / K samples) of the batch, eq. 2 of
             microGAN: real as real, its own fakes as fake, the other microbatches' fakes as real
             with weight alpha (static, or self-learned by G: ``alpha_parameters``); see microgan.py

The set structure is declared once, in ``set_size``: the mixing draws sets of that size, the
conversion builds D's layers for it and both losses reduce over it. The losses check that the
discriminator they are given agrees (its equivariant layers' set size; one logit per sample for
mbgan) and raise a ValueError naming what to change otherwise.
"""

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from .. import (
    EquivariantConv2d,
    EquivariantLinear,
    MinibatchDiscrimination,
    MinibatchStdDev,
    MixedBatch,
    Pack,
    SetBatchNorm,
    SetMean,
    batch_generator_loss,
    bernoulli_kl_loss,
    make_equivariant,
)
from ..nn.mixing import check_shard
from ..ops._common import check_bool, check_int, check_real
from . import microgan as _microgan
from .techniques import discriminator_features, feature_matching_loss

__all__ = ["GANLoss", "METHODS", "MIXED_METHODS"]

METHODS = ("standard", "minibatch", "mbstd", "pacgan", "mixup", "bgan", "mbgan", "microgan")
# The methods the benchmark tables compare (sweeps and the demo by default); microgan trains K
# discriminators and has its own experiment (python -m batchgan_ext.train.microgan).
COMPARED_METHODS = tuple(m for m in METHODS if m != "microgan")
MIXED_METHODS = ("bgan", "mbgan")  # trained on mixed batches of real and fake samples

MINIBATCH_INIT_STD = 0.05  # improved-gan's MinibatchLayer: theta ~ N(0, 0.05)
SMOOTHED_REAL_TARGET = 0.9  # one-sided label smoothing (Salimans et al. 2016, section 3.4)

_SET_LAYERS = (EquivariantConv2d, EquivariantLinear, SetMean, SetBatchNorm)


class GANLoss:
    """Discriminator and generator losses of one method (see the module docstring), for any
    discriminator and generator (vectors or images), computed with the package's ops.

    Options: ``set_size`` and ``gamma`` (bgan, mbgan: samples per set, batch smoothing of section
    3.1); ``packing`` (pacgan); ``mixup_alpha`` (mixup); ``minibatch_features``,
    ``minibatch_kernel_dims``, ``minibatch_set_size`` (minibatch: B kernels of C dimensions, each
    sample compared with the others of its set of this many); ``mbstd_group_size`` (mbstd).
    ``num_discriminators``, ``alpha``, ``alpha_schedule`` (microgan: K discriminators; alpha's schedule
    'static' with ``alpha`` in [0, 1], or 'sigmoid' / 'softsign' / 'tanh' learned by G from the paper's
    beta_0 or from the initial ``alpha``).

    Salimans et al. (2016)'s techniques, for every method:
      ``one_sided_smoothing``: D's target for real data is 0.9 instead of 1 and fakes keep 0
        (section 3.4). Where a target mixes both, its real part is scaled: mixup's target lam
        becomes 0.9 lam, bgan/mbgan's target (the real fraction of each set) 0.9 times that
        fraction, i.e. every real sample counts for 0.9 and every fake for 0. The loss stays the
        Bernoulli KL, now to B(0.9 u): the cross-entropy less the target's entropy, so the same
        gradients. G's loss is unchanged.
      ``feature_matching``: G's loss becomes ``|| mean f(real) - mean f(G(z)) ||^2`` on D's
        features at ``feature_layer`` (section 3.1; see :meth:`feature_matching_loss`); D's loss
        is unchanged.
    Historical averaging acts on parameters, not on the losses: ``techniques.HistoricalAveraging``
    (``TrainConfig.historical_averaging`` in the trainer).
    """

    def __init__(
        self,
        method: str = "mbgan",
        *,
        set_size: int = 16,
        gamma: float = 0.5,
        packing: int = 2,
        mixup_alpha: float = 0.2,
        minibatch_features: int = 32,
        minibatch_kernel_dims: int = 5,
        minibatch_set_size: int = 64,
        mbstd_group_size: int = 4,
        one_sided_smoothing: bool = False,
        feature_matching: bool = False,
        feature_layer: str | None = None,
        num_discriminators: int = 2,
        alpha: float | None = None,
        alpha_schedule: str = "sigmoid",
    ):
        self.one_sided_smoothing = check_bool(one_sided_smoothing, "one_sided_smoothing")
        self.feature_matching = check_bool(feature_matching, "feature_matching")
        if feature_layer is not None and (not isinstance(feature_layer, str) or not feature_layer):
            raise ValueError(f"feature_layer: expected a submodule name (str) or None, got {feature_layer!r}")
        self.feature_layer = feature_layer
        if not isinstance(method, str) or method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        self.method = method
        self.set_size = check_int(set_size, "set_size")
        self.gamma = check_real(gamma, "gamma")
        if not 0.0 <= self.gamma <= 0.5:
            raise ValueError(f"gamma: expected a value in [0, 0.5], got {gamma!r}")
        self.packing = check_int(packing, "packing")
        self.mixup_alpha = check_real(mixup_alpha, "mixup_alpha")
        if not (0.0 < self.mixup_alpha < float("inf")):
            raise ValueError(f"mixup_alpha: expected a positive finite number, got {mixup_alpha!r}")
        self.minibatch_features = check_int(minibatch_features, "minibatch_features")
        self.minibatch_kernel_dims = check_int(minibatch_kernel_dims, "minibatch_kernel_dims")
        self.minibatch_set_size = check_int(minibatch_set_size, "minibatch_set_size")
        self.mbstd_group_size = check_int(mbstd_group_size, "mbstd_group_size")
        # microgan: K discriminators and alpha (static, or beta learned with G's parameters).
        self.num_discriminators = check_int(num_discriminators, "num_discriminators")
        self.alpha_schedule = alpha_schedule
        self.alpha_module = None
        if method == "microgan":
            if self.num_discriminators < 2:
                raise ValueError(f"num_discriminators: expected at least 2 for microgan, got {num_discriminators!r}")
            if self.feature_matching:
                raise ValueError("feature_matching: not defined for microgan (eq. 2 is G's loss there)")
            self.alpha_module = _microgan.AlphaSchedule(alpha_schedule, alpha)

    @property
    def mixed(self) -> bool:
        return self.method in MIXED_METHODS

    def __repr__(self) -> str:
        options = {
            "bgan": f", set_size={self.set_size}, gamma={self.gamma}",
            "mbgan": f", set_size={self.set_size}, gamma={self.gamma}",
            "pacgan": f", packing={self.packing}",
            "mixup": f", mixup_alpha={self.mixup_alpha}",
            "minibatch": f", minibatch_features={self.minibatch_features}, "
            f"minibatch_kernel_dims={self.minibatch_kernel_dims}, minibatch_set_size={self.minibatch_set_size}",
            "mbstd": f", mbstd_group_size={self.mbstd_group_size}",
            "microgan": f", num_discriminators={self.num_discriminators}, alpha_schedule={self.alpha_schedule!r}",
        }.get(self.method, "")
        if self.one_sided_smoothing:
            options += ", one_sided_smoothing=True"
        if self.feature_matching:
            options += ", feature_matching=True"
        if self.feature_layer is not None:
            options += f", feature_layer={self.feature_layer!r}"
        return f"GANLoss({self.method!r}{options})"

    # ---------------------------------------------------------------------------------------
    # the discriminator

    def convert_discriminator(self, discriminator: nn.Module) -> nn.Module:
        """A copy of the user's discriminator (one logit per sample) made into this method's:

        - standard, mixup: an unchanged copy;
        - bgan, mbgan: ``make_equivariant(discriminator, set_size, reduce=None)`` (per-sample
          logits; BatchNorm gets per-set statistics);
        - pacgan: ``Pack(packing)`` in front, and the first nn.Conv2d/nn.Linear rebuilt for
          ``packing`` times its input channels/features;
        - minibatch: the last layer must be an nn.Linear on flat features (improved-gan's place);
          it becomes ``MinibatchDiscrimination`` (improved-gan's configuration) followed by that
          nn.Linear widened by ``minibatch_features`` inputs;
        - mbstd: ``MinibatchStdDev`` before the last nn.Conv2d/nn.Linear, which gets one more input
          channel/feature (StyleGAN's placement, before the final block).

        Rebuilt layers keep their spectral norm and are initialised as their class does; re-apply
        a custom initialisation after the conversion. Modules are found in registration order,
        which is execution order for nn.Sequential and for most hand-written modules.
        """
        if not isinstance(discriminator, nn.Module):
            raise ValueError(f"discriminator: expected an nn.Module, got {type(discriminator).__name__}")
        if self.method == "microgan":
            return _microgan.MicroDiscriminators(discriminator, self.num_discriminators)
        if self.mixed:
            return make_equivariant(discriminator, self.set_size, reduce=None)
        converted = copy.deepcopy(discriminator)
        if self.method == "pacgan":
            path, layer = _product_layers(converted)[0]
            _replace(converted, path, _rebuilt(layer, _in_size(layer) * self.packing))
            return nn.Sequential(Pack(self.packing), converted)
        if self.method == "minibatch":
            path, layer = _product_layers(converted)[-1]
            if not _is_plain(layer, nn.Linear):
                raise ValueError(
                    f"discriminator.{path}: minibatch discrimination goes before the last layer, which must be an "
                    f"nn.Linear on flat features (improved-gan's place), got {type(layer).__name__}; end the "
                    "discriminator with nn.Flatten() and an nn.Linear"
                )
            features = MinibatchDiscrimination(
                layer.in_features,
                self.minibatch_features,
                self.minibatch_kernel_dims,
                bias=True,
                init_std=MINIBATCH_INIT_STD,
                set_size=self.minibatch_set_size,
            ).to(layer.weight.device)
            head = _rebuilt(layer, layer.in_features + self.minibatch_features)
            _replace(converted, path, nn.Sequential(features, head))
        elif self.method == "mbstd":
            path, layer = _product_layers(converted)[-1]
            _replace(
                converted,
                path,
                nn.Sequential(MinibatchStdDev(self.mbstd_group_size), _rebuilt(layer, _in_size(layer) + 1)),
            )
        return converted

    @torch.no_grad()
    def initialize(self, discriminator: nn.Module, real: torch.Tensor) -> None:
        """Data-dependent initialisation, once before training, from a batch of real samples: each
        MinibatchDiscrimination is rescaled from the features it receives (improved-gan's init
        pass). A no-op for the other methods' layers."""
        layers = [m for m in discriminator.modules() if isinstance(m, MinibatchDiscrimination)]
        if not layers:
            return
        hooks = [m.register_forward_pre_hook(lambda module, args: module.init_from_batch(args[0])) for m in layers]
        try:
            discriminator(real)
        finally:
            for hook in hooks:
                hook.remove()

    # ---------------------------------------------------------------------------------------
    # losses

    def discriminator_loss(
        self,
        discriminator: nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """D's loss on a real and a fake batch of the same shape (detach ``fake`` for D's step).
        ``generator`` seeds the method's own draws (mixing vector, mixup weights). Data-parallel
        training with sets local to each rank: ``shard=(rank, world_size)`` when ``real``/``fake``
        are this rank's equal shard of a global batch; the draws are then made for the global batch
        and this shard's part used (ranks with generators in the same state draw what one process
        would), and the gradients averaged over the ranks (DDP) are the global batch's."""
        self._check_batches(real, fake)
        self._check_shard(shard)
        if self.method == "microgan":
            alpha = self.alpha_module().to(real.device)
            return _microgan.discriminator_loss(discriminator, real, fake, alpha, real_target=self.real_target)
        if self.mixed:
            self._check_sets(discriminator)
            batch, target, _ = self._mixer(real.shape[0])(real, fake, generator=generator, shard=shard)
            logits = self._logits(discriminator, batch)
            return bernoulli_kl_loss(logits, target * self.real_target, self.method, target.shape[0])
        if self.method == "mixup":
            weight = self.mixup_weights(real.shape[0], generator, shard).to(real)
            logits = self._logits(discriminator, torch.lerp(fake, real, weight.view(-1, *([1] * (real.dim() - 1)))))
            return bernoulli_kl_loss(logits, weight * self.real_target, "mbgan", num_sets=logits.shape[0])
        # One set per sample (or pack): KL(B(u) || B(D)) with u in {0, 1} is the binary cross-entropy.
        logits_real, logits_fake = self._logits(discriminator, real), self._logits(discriminator, fake)
        logits = torch.cat([logits_real, logits_fake])
        target = torch.cat([torch.full_like(logits_real, self.real_target), torch.zeros_like(logits_fake)])
        return bernoulli_kl_loss(logits, target, "mbgan", num_sets=logits.shape[0])

    def generator_loss(
        self,
        discriminator: nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """G's non-saturating loss (-log D, eq. 5). For bgan/mbgan, D sees a fresh mixed batch of
        ``real`` and ``fake`` with its complement, and the gradient reaches G through the fake
        samples the mix op placed; the other methods use ``fake`` alone (``real`` then only has its
        shape checked). ``shard`` as in :meth:`discriminator_loss`."""
        self._check_batches(real, fake)
        self._check_shard(shard)
        if self.method == "microgan":  # eq. 2's G side (saturating, as the paper); alpha's gradient reaches beta
            return _microgan.generator_loss(discriminator, fake, self.alpha_module().to(fake.device))
        if self.feature_matching:
            return self.feature_matching_loss(discriminator, real, fake)
        if self.mixed:
            self._check_sets(discriminator)
            mixer = self._mixer(real.shape[0])
            batch, _, _ = mixer(real, fake, generator=generator, shard=shard)
            logits = self._logits(discriminator, batch)
            return batch_generator_loss(logits, self.method, mixer.output_num_sets)
        logits = self._logits(discriminator, fake)
        return batch_generator_loss(logits, "mbgan", num_sets=logits.shape[0])

    def feature_matching_loss(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """G's feature matching loss (Salimans et al. 2016, section 3.1): ``|| mean f(real) -
        mean f(fake) ||^2`` on D's features at ``feature_layer`` (default: the input of its last
        linear/convolutional layer; ``techniques.discriminator_features``). The real and the fake
        batch each go through D alone, so for bgan/mbgan every set is all real or all fake and the
        features are the converted (equivariant) D's; pacgan's are per pack. The real features
        carry no gradient (computed without a graph)."""
        self._check_batches(real, fake)
        if self.mixed:
            self._check_sets(discriminator)
            self._mixer(real.shape[0])  # the batch must split into sets
        with torch.no_grad():
            _, real_features = discriminator_features(discriminator, real, self.feature_layer)
        _, fake_features = discriminator_features(discriminator, fake, self.feature_layer)
        return feature_matching_loss(real_features, fake_features)

    @property
    def real_target(self) -> float:
        """D's target for a real sample: 0.9 with one-sided smoothing, else 1 (fakes keep 0)."""
        return SMOOTHED_REAL_TARGET if self.one_sided_smoothing else 1.0

    def alpha(self) -> float:
        """microgan: the current alpha of eq. 2 (static, or f(beta) of eq. 3)."""
        if self.alpha_module is None:
            raise ValueError(f"method: alpha exists for microgan only, this GANLoss is {self.method!r}")
        return self.alpha_module.value()

    def alpha_parameters(self) -> list[nn.Parameter]:
        """microgan's learned beta (eq. 3), to give to *G's* optimiser; empty for a static alpha and
        the other methods. Save ``alpha_module.state_dict()`` with G's."""
        return [] if self.alpha_module is None else list(self.alpha_module.parameters())

    def mixup_weights(
        self, n: int, generator: torch.Generator | None = None, shard: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """n mixup weights lam ~ Beta(alpha, alpha), float32 (with ``shard``: this shard's n of the
        global batch's). torch's Beta sampler takes no generator, so it runs on a forked global RNG
        seeded from ``generator``'s next draw."""
        rank, world = check_shard(shard)
        seed = int(torch.randint(2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            alpha = torch.tensor(self.mixup_alpha, dtype=torch.float64)
            weights = torch.distributions.Beta(alpha, alpha).sample((n * world,))
            return weights[rank * n : (rank + 1) * n].to(torch.float32)

    # ---------------------------------------------------------------------------------------
    # checks

    def _check_shard(self, shard) -> None:
        _, world = check_shard(shard)
        if world > 1 and (self.method == "microgan" or self.feature_matching):
            what = "microgan's microbatches" if self.method == "microgan" else "feature matching's batch means"
            raise ValueError(
                f"shard: {what} are statistics of the whole batch, which sharded training does not compute yet; "
                "train this configuration in one process"
            )

    def _mixer(self, batch_size: int) -> MixedBatch:
        if batch_size % self.set_size != 0:
            raise ValueError(
                f"set_size: the batch of {batch_size} samples does not split into sets of {self.set_size}; "
                "give batches of a multiple of set_size"
            )
        return MixedBatch(gamma=self.gamma, num_sets=batch_size // self.set_size, complement=True)

    def _check_batches(self, real, fake) -> None:
        for name, x in (("real", real), ("fake", fake)):
            if not isinstance(x, torch.Tensor):
                raise ValueError(f"{name}: expected a tensor, got {type(x).__name__}")
            if x.dim() < 2 or x.shape[0] == 0:
                raise ValueError(f"{name}: expected a non-empty batch of shape (N, ...), got {tuple(x.shape)}")
        if real.shape != fake.shape:
            raise ValueError(
                f"fake: expected the real batch's shape {tuple(real.shape)} (same count and sample shape), "
                f"got {tuple(fake.shape)}"
            )

    def _check_sets(self, discriminator: nn.Module) -> None:
        """The discriminator's set-aware layers must use the sets the mixing draws."""
        for name, module in discriminator.named_modules():
            if isinstance(module, _SET_LAYERS) and module.set_size != self.set_size:
                sets = f"sets of {module.set_size}" if module.set_size is not None else "a fixed set count"
                raise ValueError(
                    f"discriminator.{name}: this {type(module).__name__} uses {sets}, but the loss mixes sets of "
                    f"set_size={self.set_size}; convert D with the same GANLoss (convert_discriminator) or "
                    f"make_equivariant(D, {self.set_size}, reduce=None)"
                )

    def _logits(self, discriminator: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """D's output as one logit per sample (per pack for pacgan), checked."""
        out = discriminator(x)
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"discriminator: expected it to return a tensor of logits, got {type(out).__name__}")
        expected = x.shape[0] // self.packing if self.method == "pacgan" else x.shape[0]
        if out.shape[0] != expected or out.numel() != expected:
            ends_in_set_mean = self.mixed and out.shape[0] == x.shape[0] // self.set_size
            hint = (
                f"one per set: {self.method} needs one logit per sample (eq. 14 applies the sigmoid per sample; "
                "eq. 13 averages them in the loss): build D with make_equivariant(D, set_size, reduce=None), "
                "or with GANLoss.convert_discriminator"
                if ends_in_set_mean
                else "it must return one logit per sample, shape (N,) or (N, 1)"
            )
            raise ValueError(
                f"discriminator: returned shape {tuple(out.shape)} for a batch of {x.shape[0]} samples"
                + (f" ({expected} packs of {self.packing})" if self.method == "pacgan" else "")
                + f"; {hint}"
            )
        return out.reshape(-1)


# -------------------------------------------------------------------------------------------
# discriminator surgery


def _is_plain(module: nn.Module, cls: type) -> bool:
    """``module`` is ``cls`` itself (parametrize subclasses it on the fly), not another subclass."""
    kind = type(module)
    if parametrize.is_parametrized(module):
        kind = kind.__bases__[0]
    return kind is cls


def _product_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    layers = [(name, m) for name, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ValueError("discriminator: has no nn.Conv2d or nn.Linear layer to build the method's layers around")
    return layers


def _in_size(layer: nn.Module) -> int:
    return layer.in_channels if isinstance(layer, nn.Conv2d) else layer.in_features


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, new)


def _rebuilt(layer: nn.Module, in_size: int) -> nn.Module:
    """A fresh layer like ``layer`` (same class, options, device, dtype, spectral norm) with
    ``in_size`` input channels/features."""
    weight = layer.parametrizations.weight.original if parametrize.is_parametrized(layer, "weight") else layer.weight
    factory = dict(device=weight.device, dtype=weight.dtype)
    if _is_plain(layer, nn.Conv2d):
        if layer.groups != 1:
            raise ValueError(f"discriminator: cannot widen a grouped convolution ({layer}); use groups=1 there")
        new = nn.Conv2d(
            in_size,
            layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            1,
            layer.bias is not None,
            layer.padding_mode,
            **factory,
        )
    elif _is_plain(layer, nn.Linear):
        new = nn.Linear(in_size, layer.out_features, layer.bias is not None, **factory)
    else:
        raise ValueError(
            f"discriminator: can rebuild plain nn.Conv2d and nn.Linear layers only, got {type(layer).__name__}"
        )
    if parametrize.is_parametrized(layer, "weight"):
        (sn,) = layer.parametrizations["weight"]
        if type(sn).__name__ != "_SpectralNorm":
            raise ValueError(f"discriminator: {layer} has a weight parametrization other than spectral_norm")
        nn.utils.parametrizations.spectral_norm(new, n_power_iterations=sn.n_power_iterations, eps=sn.eps)
    new.train(layer.training)
    return new
