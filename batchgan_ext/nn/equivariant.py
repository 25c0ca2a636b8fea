"""nn.Module wrappers of the permutation-equivariant layers (BGAN paper, section 4)."""

import math

import torch
from torch import nn

from ..ops import equivariant_conv2d, equivariant_linear, set_mean
from ..ops._common import ACTIVATIONS, check_bool, check_int, check_optional_int, check_real, pair

__all__ = ["EquivariantConv2d", "EquivariantLinear", "SetBatchNorm", "SetMean"]


class _SetCount:
    """How a module turns the batch size into a set count: ``set_size`` samples per set,
    ``num_sets`` sets, or (neither) the whole batch as one set."""

    def _init_sets(self, set_size, num_sets):
        set_size = check_optional_int(set_size, "set_size")
        num_sets = check_optional_int(num_sets, "num_sets")
        if set_size is not None and num_sets is not None:
            raise ValueError("set_size, num_sets: give at most one of them (samples per set, or number of sets)")
        self.set_size = set_size
        self.num_sets = num_sets

    def _num_sets_for(self, batch: int) -> int:
        if self.set_size is not None:
            if batch % self.set_size != 0:
                raise ValueError(f"set_size: the batch of {batch} samples does not split into sets of {self.set_size}")
            return max(batch // self.set_size, 1)  # an empty batch is reported by the op
        return self.num_sets if self.num_sets is not None else 1

    def _sets_repr(self):
        if self.set_size is not None:
            return f"set_size={self.set_size}"
        if self.num_sets is not None:
            return f"num_sets={self.num_sets}"
        return "one set"


def _check_activation(activation, negative_slope):
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    negative_slope = check_real(negative_slope, "negative_slope")
    if not (math.isfinite(negative_slope) and negative_slope >= 0):
        raise ValueError(f"negative_slope: expected a finite value >= 0, got {negative_slope!r}")
    return negative_slope


class _EquivariantLayer(nn.Module, _SetCount):
    # Set by batchgan_ext.distributed.convert_spanning_sets: sets that span processes (layout (b)).
    spanning_sets = None

    def _init_weights(self, set_size: int | None):
        """nn.Conv2d / nn.Linear's init for Lambda, Gamma and bias, then the reweighting of
        section 4.3: Lambda~ = S/(S+1) Lambda, Gamma~ = 1/(S+1) Gamma, so that at the start rho(x)
        weighs like one more sample of the set. S is ``set_size`` when given; with ``num_sets`` or
        one whole-batch set the set size is unknown before the first batch and S = 1 is used
        (Lambda/2, Gamma/2); call ``reset_parameters(set_size=S)`` to initialise for a known S."""
        s = float(set_size if set_size is not None else 1)
        with torch.no_grad():
            for w in (self.weight, self.weight_gamma):
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            if self.bias is not None:
                fan_in = self.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(self.bias, -bound, bound)
            self.weight.mul_(s / (s + 1))
            self.weight_gamma.mul_(1 / (s + 1))

    def reset_parameters(self, set_size: int | None = None) -> None:
        self._init_weights(set_size if set_size is not None else self.set_size)

    def _init_activation(self, set_size, num_sets, activation, negative_slope) -> None:
        self._init_sets(set_size, num_sets)
        self.negative_slope = float(_check_activation(activation, negative_slope))
        self.activation = activation

    def _init_parameters(self, shape, bias, device, dtype) -> None:
        """Lambda and Gamma of ``shape`` (C_out first), the bias if asked, then the init."""
        bias = check_bool(bias, "bias")
        factory = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.empty(shape, **factory))
        self.weight_gamma = nn.Parameter(torch.empty(shape, **factory))
        self.bias = nn.Parameter(torch.empty(shape[0], **factory)) if bias else None
        self.reset_parameters()


class EquivariantConv2d(_EquivariantLayer):
    """``y_b = act(bias + conv(x_b, weight) + conv(mean of b's set, weight_gamma))`` (eq. 12).

    nn.Conv2d's constructor (channel ``groups`` as in nn.Conv2d; zero padding only) plus:
      - ``set_size``: samples per set; at forward the batch of N is N // set_size sets (N must
        be divisible). ``num_sets``: a fixed number of sets instead. Neither: the batch is one set.
      - ``activation``: 'identity', 'relu' or 'leaky_relu' (``negative_slope`` >= 0), fused.
    Parameters: ``weight`` (Lambda) and ``weight_gamma`` (Gamma), both (C_out, C_in/groups, kh, kw),
    and ``bias`` (C_out,). Works under spectral_norm applied to weight and weight_gamma.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        *,
        set_size=None,
        num_sets=None,
        activation="identity",
        negative_slope=0.01,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self._init_activation(set_size, num_sets, activation, negative_slope)
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        groups = check_int(groups, "groups")
        if in_channels % groups != 0 or out_channels % groups != 0:
            raise ValueError(
                f"groups: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                f"divisible by groups ({groups})"
            )
        self.kernel_size = pair(kernel_size, "kernel_size")
        if min(self.kernel_size) < 1:
            raise ValueError(f"kernel_size: expected positive sizes, got {kernel_size!r}")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.dilation = pair(dilation, "dilation")
        self.groups = groups
        self._init_parameters((self.out_channels, self.in_channels // groups) + self.kernel_size, bias, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spanning_sets is not None:
            return self.spanning_sets.equivariant(self, x)
        return equivariant_conv2d(
            x,
            self.weight,
            self.weight_gamma,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self._num_sets_for(x.shape[0]),
            self.activation,
            self.negative_slope,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}"
            + (f", groups={self.groups}" if self.groups != 1 else "")
            + f", bias={self.bias is not None}, "
            f"{self._sets_repr()}, activation={self.activation!r}"
            + (f", negative_slope={self.negative_slope}" if self.activation == "leaky_relu" else "")
        )


class EquivariantLinear(_EquivariantLayer):
    """``y_b = act(bias + x_b weight^T + (mean of b's set) weight_gamma^T)`` (eq. 12) on (N, F).
    nn.Linear's constructor plus ``set_size``/``num_sets``/``activation`` as in
    :class:`EquivariantConv2d`."""

    def __init__(
        self,
        in_features,
        out_features,
        bias=True,
        *,
        set_size=None,
        num_sets=None,
        activation="identity",
        negative_slope=0.01,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self._init_activation(set_size, num_sets, activation, negative_slope)
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        self._init_parameters((self.out_features, self.in_features), bias, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spanning_sets is not None:
            return self.spanning_sets.equivariant(self, x)
        return equivariant_linear(
            x,
            self.weight,
            self.weight_gamma,
            self.bias,
            self._num_sets_for(x.shape[0]),
            self.activation,
            self.negative_slope,
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"{self._sets_repr()}, activation={self.activation!r}"
            + (f", negative_slope={self.negative_slope}" if self.activation == "leaky_relu" else "")
        )


class SetMean(nn.Module, _SetCount):
    """The invariant reduction of eq. 10: mean over each set, (N, ...) -> (G, ...), with sets
    given by ``set_size`` or ``num_sets`` as in :class:`EquivariantConv2d`."""

    spanning_sets = None  # as in _EquivariantLayer

    def __init__(self, set_size: int | None = None, num_sets: int | None = None):
        super().__init__()
        self._init_sets(set_size, num_sets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spanning_sets is not None:
            return self.spanning_sets.set_mean(x)
        return set_mean(x, self._num_sets_for(x.shape[0]))

    def extra_repr(self) -> str:
        return self._sets_repr()


class SetBatchNorm(nn.Module):
    """Batch normalisation with statistics per set: what :func:`batchgan_ext.make_equivariant` puts
    in place of a discriminator's nn.BatchNorm1d/2d/3d.

    nn.BatchNorm in train mode normalises every sample by statistics of the whole batch, so one
    set's output would depend on the other sets of the batch and the discriminator would no longer
    be a function of each set alone (eq. 10 needs that). Here the mean and variance are taken over
    the samples of each set of ``set_size`` (and the spatial positions), per channel: symmetric in
    the set's samples, so the layer stays permutation-equivariant within a set and sets stay
    independent. The affine weight and bias are the original layer's. The running statistics, used
    in eval mode as nn.BatchNorm does, are updated with the mean over the sets of each set's mean and
    (unbiased) variance.
    """

    def __init__(self, batch_norm: nn.modules.batchnorm._BatchNorm, set_size: int):
        super().__init__()
        self.set_size = check_int(set_size, "set_size")
        self.num_features = batch_norm.num_features
        self.eps = batch_norm.eps
        self.momentum = batch_norm.momentum
        self.weight = batch_norm.weight
        self.bias = batch_norm.bias
        self.track_running_stats = batch_norm.track_running_stats
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, getattr(batch_norm, name))
        self.train(batch_norm.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"x: expected a batch of shape (N, {self.num_features}, ...), got shape {tuple(x.shape)}")
        if not self.training and self.track_running_stats:
            return nn.functional.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        n, s, c = x.shape[0], self.set_size, self.num_features
        if n == 0 or n % s != 0:
            raise ValueError(f"set_size: the batch of {n} samples does not split into sets of {s}")
        g, rest = n // s, x.shape[2:]
        # (G*S, C, ...) -> (S, G*C, ...): batch_norm's statistics over dims 0 and 2.. are then per (set, channel).
        per_set = x.reshape(g, s, c, *rest).transpose(0, 1).reshape(s, g * c, *rest)
        y = nn.functional.batch_norm(per_set, None, None, None, None, True, 0.0, self.eps)
        y = y.reshape(s, g, c, *rest).transpose(0, 1).reshape(x.shape)
        if self.weight is not None:
            shape = (1, c) + (1,) * len(rest)
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats:
            self._update_running_stats(x.detach().reshape(g, s, c, -1))
        return y

    @torch.no_grad()
    def _update_running_stats(self, x: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative moving average, as nn.BatchNorm with momentum=None
            factor = 1.0 / float(self.num_batches_tracked)
        else:
            factor = self.momentum
        values = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)  # (G, C, S * positions)
        mean = values.mean(-1).mean(0)
        var = values.var(-1, unbiased=values.shape[-1] > 1).mean(0)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(var.to(self.running_var.dtype), factor)

    def extra_repr(self) -> str:
        return f"{self.num_features}, set_size={self.set_size}, eps={self.eps}, momentum={self.momentum}"
