"""Drop-in conversion of an existing discriminator to a permutation-invariant one (BGAN paper,
section 4.3, Fig. 1): every nn.Conv2d / nn.Linear becomes its equivariant counterpart, and a
set-mean over the final outputs makes the network invariant (eq. 10), or, without it, the network
stays equivariant with per-sample outputs (M-BGAN, eq. 14)."""

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from .nn.equivariant import EquivariantConv2d, EquivariantLinear, SetMean

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


def _convert_children(module, set_size):
    children = list(module.named_children())
    sequential = isinstance(module, nn.Sequential)
    for i, (name, child) in enumerate(children):
        if _plain_product_layer(child):
            # In a Sequential, fuse a following ReLU/LeakyReLU into the layer's epilogue.
            fused = _fusable(children[i + 1][1]) if sequential and i + 1 < len(children) else None
            if fused is not None:
                setattr(module, name, _convert_layer(child, set_size, *fused))
                setattr(module, children[i + 1][0], nn.Identity())
            else:
                setattr(module, name, _convert_layer(child, set_size))
        else:
            _convert_children(child, set_size)


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
    epilogue (it is replaced by nn.Identity). The discriminator's own code must not mix samples
    (e.g. BatchNorm in train mode would break the per-set invariance).
    """
    if isinstance(set_size, bool) or not isinstance(set_size, int) or set_size < 1:
        raise ValueError(f"set_size: expected a positive integer, got {set_size!r}")
    if not isinstance(discriminator, nn.Module):
        raise ValueError(f"discriminator: expected an nn.Module, got {type(discriminator).__name__}")
    if not (reduce is None or (isinstance(reduce, str) and reduce == "mean")):
        raise ValueError(f"reduce: expected 'mean' (one output per set) or None (one per sample), got {reduce!r}")
    body = copy.deepcopy(discriminator)
    if _plain_product_layer(body):
        body = _convert_layer(body, set_size)
    else:
        _convert_children(body, set_size)
    if reduce is None:
        return nn.Sequential(body)
    return nn.Sequential(body, SetMean(set_size=set_size))
