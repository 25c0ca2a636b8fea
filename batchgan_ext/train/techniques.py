"""Salimans et al. (2016), "Improved Techniques for Training GANs": the techniques of section 3
that act on the training loop rather than on D's layers (minibatch discrimination is
``batchgan_ext.MinibatchDiscrimination``; virtual batch normalization is
``batchgan_ext.VirtualBatchNorm1d/2d``).

- :func:`feature_matching_loss`: G's feature matching objective (section 3.1),
  ``|| E_x f(x) - E_z f(G(z)) ||_2^2`` on an intermediate layer f of D;
- :func:`discriminator_features` / :func:`feature_layer`: that layer f of any discriminator, taken
  with a forward hook (default: the input of its last linear or convolutional layer);
- :class:`HistoricalAveraging`: section 3.3's ``|| theta - (1/t) sum_i theta[i] ||^2`` penalty
  towards the running mean of each parameter;
- one-sided label smoothing (section 3.4) is ``GANLoss(one_sided_smoothing=True)``.

The paper's notes number no equations; the sections are those of Salimans et al. (2016).
"""

import math

import torch
from torch import nn

from .. import EquivariantConv2d, EquivariantLinear

__all__ = [
    "FEATURE_LAYER_TYPES",
    "HistoricalAveraging",
    "discriminator_features",
    "feature_layer",
    "feature_matching_loss",
]

# The layers whose input is D's default feature layer: improved-gan matches the features that enter
# D's last dense layer; the equivariant layers are what make_equivariant puts in place of nn.Linear/Conv2d.
FEATURE_LAYER_TYPES = (nn.Linear, nn.Conv2d, EquivariantLinear, EquivariantConv2d)


def _check_features(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a tensor of features, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(f"{name}: expected a non-empty batch of features of shape (N, ...), got {tuple(x.shape)}")


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Feature matching (Salimans et al. 2016, section 3.1): ``|| mean_x f(x) - mean_z f(G(z)) ||_2^2``,
    the squared L2 distance between the batch means of D's intermediate features on real and on
    generated samples, a scalar.

    ``real_features`` (N, ...) and ``fake_features`` (M, ...) must have the same per-sample shape,
    dtype and device; the batch sizes may differ. Features of more than one dimension per sample
    (e.g. (C, H, W) maps) are flattened, so the norm runs over every feature. This is the sum over
    features; improved-gan's code takes their mean, which is this divided by the feature count
    (only the effective learning rate differs). Detach ``real_features`` or not: no parameter of
    G is behind them, and D's parameters are not stepped with G's loss.
    """
    _check_features(real_features, "real_features")
    _check_features(fake_features, "fake_features")
    if real_features.shape[1:] != fake_features.shape[1:]:
        raise ValueError(
            f"fake_features: expected the per-sample shape of real_features {tuple(real_features.shape[1:])}, "
            f"got {tuple(fake_features.shape[1:])}"
        )
    if fake_features.dtype != real_features.dtype or fake_features.device != real_features.device:
        raise ValueError(
            f"fake_features: expected real_features' dtype and device ({real_features.dtype}, "
            f"{real_features.device}), got ({fake_features.dtype}, {fake_features.device})"
        )
    difference = real_features.flatten(1).mean(0) - fake_features.flatten(1).mean(0)
    return difference.square().sum()


# -------------------------------------------------------------------------------------------
# D's intermediate features


def feature_layer(discriminator: nn.Module, layer: str | None = None) -> tuple[str, nn.Module, bool]:
    """The module whose features :func:`discriminator_features` takes: ``(path, module, use_input)``.

    ``layer=None``: the last nn.Linear / nn.Conv2d (or EquivariantLinear / EquivariantConv2d) in
    registration order, which is execution order for nn.Sequential and most hand-written modules;
    its *input* is taken (``use_input=True``), i.e. the features D's output layer sees.
    ``layer="name"``: the submodule of that dotted name (``discriminator.get_submodule``); its
    *output* is taken.
    """
    if not isinstance(discriminator, nn.Module):
        raise ValueError(f"discriminator: expected an nn.Module, got {type(discriminator).__name__}")
    if layer is not None:
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"layer: expected a submodule name (str) or None, got {layer!r}")
        try:
            return layer, discriminator.get_submodule(layer), False
        except AttributeError:
            names = [name for name, _ in discriminator.named_modules() if name]
            raise ValueError(f"layer: the discriminator has no submodule {layer!r}; its submodules: {names}") from None
    found = [(name, m) for name, m in discriminator.named_modules() if isinstance(m, FEATURE_LAYER_TYPES)]
    if not found:
        raise ValueError(
            "discriminator: has no nn.Linear / nn.Conv2d (or equivariant) layer whose input could serve as the "
            "feature layer; name one with layer='...'"
        )
    name, module = found[-1]
    return name, module, True


def discriminator_features(
    discriminator: nn.Module, x: torch.Tensor, layer: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(output, features)``: one forward pass of ``discriminator`` on ``x``, and the intermediate
    features of the layer :func:`feature_layer` picks (``layer``), caught by a forward hook that is
    removed afterwards, so any user network works unchanged. Features keep their graph: G's
    feature-matching gradient flows through them."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x: expected a tensor, got {type(x).__name__}")
    path, module, use_input = feature_layer(discriminator, layer)
    caught: list[torch.Tensor] = []

    def hook(_module, args, output):
        value = args[0] if use_input else output
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"layer: {path or 'the discriminator'} {'received' if use_input else 'returned'} a "
                f"{type(value).__name__}, expected a tensor of features"
            )
        caught.append(value)

    handle = module.register_forward_hook(hook)
    try:
        output = discriminator(x)
    finally:
        handle.remove()
    if not caught:
        raise ValueError(f"layer: {path} was not called in the discriminator's forward pass")
    # A layer called several times (weight sharing): its last call is the one nearest the output.
    return output, caught[-1]


# -------------------------------------------------------------------------------------------
# historical averaging


class HistoricalAveraging:
    """Historical averaging (section 3.3): each player's cost gets ``weight * sum_p || p - (1/t)
    sum_{i=1}^t p[i] ||^2`` over its parameters p, p[i] being their value after update i - 1.

    ``penalty()`` gives that term (add it to the loss before ``backward``); ``update()`` adds the
    parameters' current values to the running means (call it after the optimiser step). The means
    start at the parameters' values at construction (t = 1), so the penalty is 0 before the first
    step; they are buffers of the parameters' dtype and device, without gradient, updated in place
    as ``mean += (p - mean) / t``. ``state_dict()`` / ``load_state_dict()`` save and restore the
    means and t, so a resumed run continues the same average.
    """

    def __init__(self, parameters, weight: float):
        if isinstance(parameters, nn.Module):
            parameters = parameters.parameters()
        try:
            self.parameters = list(parameters)
        except TypeError:
            raise ValueError(
                f"parameters: expected an nn.Module or an iterable of parameters, got {type(parameters).__name__}"
            ) from None
        if not self.parameters or not all(isinstance(p, torch.Tensor) for p in self.parameters):
            raise ValueError("parameters: expected a non-empty iterable of tensors (a module's parameters)")
        if not all(p.is_floating_point() for p in self.parameters):
            raise ValueError("parameters: expected floating-point tensors")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (0 < weight < math.inf):
            raise ValueError(f"weight: expected a positive finite number, got {weight!r}")
        self.weight = float(weight)
        self.count = 1
        self.means = [p.detach().clone() for p in self.parameters]

    def penalty(self) -> torch.Tensor:
        """``weight * sum_p || p - mean_p ||^2`` (a scalar with gradient ``2 weight (p - mean_p)``)."""
        total = sum((p - m).square().sum() for p, m in zip(self.parameters, self.means))
        return self.weight * total

    @torch.no_grad()
    def update(self) -> None:
        """Adds the parameters' current values to their running means (after the optimiser step)."""
        self.count += 1
        for p, m in zip(self.parameters, self.means):
            m.add_(p.detach() - m, alpha=1.0 / self.count)

    def state_dict(self) -> dict:
        return {"count": self.count, "means": [m.clone() for m in self.means]}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or set(state) != {"count", "means"}:
            raise ValueError("state: expected a HistoricalAveraging state_dict with keys 'count' and 'means'")
        count, means = state["count"], state["means"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"state: expected a positive integer count, got {count!r}")
        if not isinstance(means, (list, tuple)) or len(means) != len(self.parameters):
            raise ValueError(f"state: expected {len(self.parameters)} means (one per parameter)")
        for i, (p, m) in enumerate(zip(self.parameters, means)):
            if not isinstance(m, torch.Tensor) or m.shape != p.shape:
                raise ValueError(f"state: mean {i} has shape {getattr(m, 'shape', None)}, expected {tuple(p.shape)}")
        self.count = count
        self.means = [m.detach().to(p).clone() for p, m in zip(self.parameters, means)]

    def __repr__(self) -> str:
        return f"HistoricalAveraging(weight={self.weight}, parameters={len(self.parameters)}, t={self.count})"
