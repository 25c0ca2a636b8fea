"""Drop-in conversion of an existing discriminator to a permutation-invariant one (BGAN paper,
section 4.3, Fig. 1): every nn.Conv2d / nn.Linear becomes its equivariant counterpart, and a
set-mean over the final outputs makes the network invariant (eq. 10), or, without it, the network
stays equivariant with per-sample outputs (M-BGAN, eq. 14)."""

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from .nn.equivariant import EquivariantConv2d, EquivariantLinear, SetBatchNorm, SetMean
from .nn.minibatch import MinibatchDiscrimination, MinibatchStdDev
from .nn.packing import Pack

__all__ = ["make_equivariant"]


def _spectral_norm_of(layer):
    """The _SpectralNorm parametrization of layer.weight, or None."""
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    plist = layer.parametrizations["weight"]
    if len(plist) != 1 or type(plist[0]).__name__ != "_SpectralNorm":
        raise ValueError(
            f"discriminator: {type(layer).__name__} has a weight parametrization other than "
            "spectral_norm, which make_equivariant does not know how to carry over"
        )
    return plist[0]


def _fusable(module):
    if isinstance(module, nn.ReLU):
        return "relu", 0.0
    if isinstance(module, nn.LeakyReLU) and module.negative_slope >= 0:
        return "leaky_relu", float(module.negative_slope)
    return None


def _convert_layer(layer, set_size, activation="identity", negative_slope=0.01):
    sn = _spectral_norm_of(layer)
    weight = layer.parametrizations.weight.original if sn is not None else layer.weight
    factory = dict(device=weight.device, dtype=weight.dtype)
    common = dict(set_size=set_size, activation=activation, negative_slope=negative_slope, **factory)
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ValueError(
                "discriminator: make_equivariant supports nn.Conv2d with numeric padding and "
                f"padding_mode='zeros', got {layer}"
            )
        new = EquivariantConv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            layer.groups,
            layer.bias is not None,
            **common,
        )
    else:
        new = EquivariantLinear(layer.in_features, layer.out_features, layer.bias is not None, **common)
    s = float(set_size)
    with torch.no_grad():
        # Lambda~ = S/(S+1) Lambda from the trained/initialised weights; Gamma keeps the fresh
        # init, already scaled by 1/(S+1) (section 4.3).
        new.weight.copy_(weight * (s / (s + 1)))
        if layer.bias is not None:
            new.bias.copy_(layer.bias)
    if sn is not None:
        for name in ("weight", "weight_gamma"):
            torch.nn.utils.parametrizations.spectral_norm(
                new, name, n_power_iterations=sn.n_power_iterations, eps=sn.eps
            )
    new.train(layer.training)
    return new


def _plain_product_layer(module):
    """nn.Conv2d / nn.Linear themselves (parametrize makes a subclass on the fly), not other subclasses."""
    cls = type(module)
    if parametrize.is_parametrized(module):
        cls = cls.__bases__[0]
    return cls in (nn.Conv2d, nn.Linear)


# Layers that act on each sample alone but that make_equivariant does not convert: left as they are,
# the network would lack eq. 12's set term there, which the user did not ask for.
_UNCONVERTED_PRODUCT_LAYERS = (
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Conv1d,
    nn.Conv3d,
    nn.Bilinear,
    nn.modules.lazy.LazyModuleMixin,
)
# Layers whose output for one sample depends on other samples along groups that are not the sets.
_SAMPLE_MIXING_LAYERS = (MinibatchDiscrimination, MinibatchStdDev, Pack, nn.SyncBatchNorm)


def _check_convertible(module, path):
    where = f"discriminator.{path}" if path else "discriminator"
    kind = type(module).__name__
    if isinstance(module, (EquivariantConv2d, EquivariantLinear, SetMean, SetBatchNorm)):
        raise ValueError(f"{where}: is already converted ({kind}); pass the original discriminator to make_equivariant")
    if isinstance(module, _SAMPLE_MIXING_LAYERS):
        raise ValueError(
            f"{where}: {kind} mixes samples across the batch along its own groups, not the sets of make_equivariant, "
            "so one set's output would depend on other sets; remove it from the discriminator (the equivariant "
            "layers already let each sample see its set)"
        )
    if isinstance(module, (nn.Conv2d, nn.Linear)) and not _plain_product_layer(module):
        raise ValueError(
            f"{where}: {kind} subclasses {'nn.Conv2d' if isinstance(module, nn.Conv2d) else 'nn.Linear'}, and "
            "make_equivariant converts the plain layers only (a subclass's forward may differ); use the plain layer"
        )
    if isinstance(module, _UNCONVERTED_PRODUCT_LAYERS):
        raise ValueError(
            f"{where}: make_equivariant converts nn.Conv2d and nn.Linear only, and a {kind} would stay without the "
            "set term of eq. 12; replace it with an nn.Conv2d (e.g. nn.Upsample + nn.Conv2d for a transposed "
            "convolution) or an nn.Linear on flattened features"
        )


def _convert_children(module, set_size, prefix=""):
    children = list(module.named_children())
    sequential = isinstance(module, nn.Sequential)
    for i, (name, child) in enumerate(children):
        path = f"{prefix}{name}"
        _check_convertible(child, path)
        if _plain_product_layer(child):
            # In a Sequential, fuse a following ReLU/LeakyReLU into the layer's epilogue.
            fused = _fusable(children[i + 1][1]) if sequential and i + 1 < len(children) else None
            if fused is not None:
                setattr(module, name, _convert_layer(child, set_size, *fused))
                setattr(module, children[i + 1][0], nn.Identity())
            else:
                setattr(module, name, _convert_layer(child, set_size))
        elif isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, SetBatchNorm(child, set_size))
        else:
            _convert_children(child, set_size, f"{path}.")


def make_equivariant(discriminator: nn.Module, set_size: int, reduce: str | None = "mean") -> nn.Module:
    """A deep copy of ``discriminator`` in which every nn.Conv2d and nn.Linear is replaced by an
    :class:`EquivariantConv2d` / :class:`EquivariantLinear` over sets of ``set_size`` samples.

    ``reduce`` says what comes after the converted body:
      - ``"mean"`` (default): a :class:`SetMean`, so the result maps (N, ...) to one output per set,
        (N/S, ...), invariant to the order of the samples inside a set (BGAN, eq. 10). Its logits
        are already set means: pair it with ``bernoulli_kl_loss(logits, target, "bgan",
        num_sets=N/S)``, where each set is then one logit (the mean of a single logit is itself).
      - ``None``: nothing, so the result maps (N, ...) to per-sample outputs (N, ...), equivariant:
        permuting the samples inside a set permutes the outputs the same way. This is what M-BGAN
        (eq. 14) needs: ``bernoulli_kl_loss(logits, target, "mbgan", num_sets=N/S)`` applies the
        sigmoid per sample against its set's target. (``"bgan"`` mode on these logits averages
        each set's logits inside the loss, which gives the same loss as ``reduce="mean"``.)

    Lambda is copied from the existing weight with the reweighting S/(S+1) of section 4.3; Gamma
    is freshly initialised (nn.Conv2d/nn.Linear init times 1/(S+1)); biases are copied. Layers
    under spectral_norm get spectral_norm on both weight and weight_gamma (spectral_norm divides
    by the largest singular value, so under it the reweighting does not change the forward).
    Inside an nn.Sequential, a ReLU or LeakyReLU right after a layer is fused into the layer's
    epilogue (it is replaced by nn.Identity). nn.BatchNorm1d/2d/3d becomes a :class:`SetBatchNorm`
    (statistics per set, the layer's affine parameters and running buffers), so that no set's output
    depends on another set. Layers it cannot make set-aware raise a ValueError naming the layer and
    what to do: nn.ConvTranspose*, nn.Conv1d/3d, nn.Bilinear and lazy layers (they would stay without
    eq. 12's set term), and layers that mix samples along their own groups (MinibatchDiscrimination,
    MinibatchStdDev, Pack, nn.SyncBatchNorm). The discriminator's own forward code must not mix
    samples either (e.g. ``x.mean(0)``), which no conversion can see.
    """
    if isinstance(set_size, bool) or not isinstance(set_size, int) or set_size < 1:
        raise ValueError(f"set_size: expected a positive integer, got {set_size!r}")
    if not isinstance(discriminator, nn.Module):
        raise ValueError(f"discriminator: expected an nn.Module, got {type(discriminator).__name__}")
    if not (reduce is None or (isinstance(reduce, str) and reduce == "mean")):
        raise ValueError(f"reduce: expected 'mean' (one output per set) or None (one per sample), got {reduce!r}")
    _check_convertible(discriminator, "")
    body = copy.deepcopy(discriminator)
    if _plain_product_layer(body):
        body = _convert_layer(body, set_size)
    else:
        _convert_children(body, set_size)
    if reduce is None:
        return nn.Sequential(body)
    return nn.Sequential(body, SetMean(set_size=set_size))
