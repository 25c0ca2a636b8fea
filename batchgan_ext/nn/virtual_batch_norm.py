"""Virtual batch normalization (Salimans et al. 2016, section 3.5 "Virtual batch normalization").

Batch normalisation makes a sample's output depend on the other samples of its batch. VBN
normalises each sample with the statistics of a *reference batch*, chosen once at the start of
training and fixed, combined with the sample itself; the reference batch is propagated through
the network with the current parameters, so its statistics follow the layers before it (and carry
their gradient, as in improved-gan's code). A sample's output then depends on the reference batch
and itself only, never on the other samples of its batch.

Usage (the reference pass each step, before the batches it normalises)::

    G = nn.Sequential(nn.Linear(64, 128), VirtualBatchNorm1d(128), nn.ReLU(), nn.Linear(128, 2))
    z_ref = torch.randn(64, 64)                # drawn once, kept for the whole training
    with record_reference(G):                  # every VBN layer of G stores its reference statistics
        G(z_ref)
    fake = G(torch.randn(256, 64))             # each sample normalised by the reference + itself

The stored statistics hold the reference pass's autograd graph; once a backward has gone through
them, torch refuses a second one ("backward through the graph a second time"): record the
reference again, or record it under ``torch.no_grad()`` for sampling.
"""

import contextlib

import torch
from torch import nn
from torch.nn import functional as F

from ..ops._common import check_bool, check_int, check_real

__all__ = ["VirtualBatchNorm1d", "VirtualBatchNorm2d", "record_reference"]


class _VirtualBatchNorm(nn.Module):
    """Virtual batch normalization over channels (dim 1) of (N, C, *spatial) inputs.

    Two calls:

    - the *reference pass* (inside :func:`record_reference`, or :meth:`set_reference`): the layer
      stores the reference batch's per-channel mean and mean of squares over the batch and
      spatial positions (with their autograd graph) and its count R, and returns the reference
      batch normalised with its own statistics (batch norm of the reference batch);
    - every other call: each sample x is normalised with the statistics of the reference batch
      and x together. As in improved-gan's code (``VBN`` of its ImageNet model), the mean and the
      mean of squares are ``1/(R+1)`` times x's own plus ``R/(R+1)`` times the reference's, and
      the variance is ``mean of squares - mean^2`` (biased, as batch norm's): these are exactly
      the statistics of the reference batch with x appended, since every sample has the same
      number of positions. ``include_sample=False`` uses the reference statistics alone (the
      cheaper variant; a sample then no longer takes part in its own normalisation).

    Then ``y = (x - mean) / sqrt(var + eps)``, times ``weight`` plus ``bias`` (per channel,
    initialised to 1 and 0) when ``affine``. The layer behaves the same in train and eval mode (it
    has no running statistics: the reference batch replaces them).

    Computation: once the statistics are known, the normalisation is one elementwise pass, which
    torch's fused ``F.batch_norm`` kernel already is: given per-(sample, channel) statistics it
    runs on the input viewed as one sample of N*C channels. So there is no custom kernel. That
    kernel does not differentiate with respect to the statistics it is given, though, so when
    they need a gradient (training: they depend on x and on the reference pass's graph) the same
    formula runs as two elementwise torch ops, which autograd differentiates. Statistics are
    accumulated in float32 for float16/bfloat16 inputs.
    """

    _dims: tuple[int, ...] = ()
    _shapes = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        affine: bool = True,
        include_sample: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.num_features = check_int(num_features, "num_features")
        self.eps = check_real(eps, "eps")
        if not 0.0 < self.eps < float("inf"):
            raise ValueError(f"eps: expected a positive finite number, got {eps!r}")
        self.affine = check_bool(affine, "affine")
        self.include_sample = check_bool(include_sample, "include_sample")
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.num_features, device=device, dtype=dtype))
            self.bias = nn.Parameter(torch.zeros(self.num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.recording = False
        self._reference: tuple[torch.Tensor, torch.Tensor, int] | None = None

    # ---------------------------------------------------------------------------------------

    def _check_input(self, x, name: str = "x") -> None:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name}: expected a tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
        if x.dim() not in self._dims or x.shape[1] != self.num_features:
            shapes = self._shapes.replace("C", str(self.num_features))
            raise ValueError(f"{name}: expected a batch of shape {shapes}, got {tuple(x.shape)}")
        if x.shape[0] == 0 or x.numel() == 0:
            raise ValueError(f"{name}: expected a non-empty batch, got shape {tuple(x.shape)}")

    @staticmethod
    def _accumulate(x: torch.Tensor) -> torch.Tensor:
        return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x

    def set_reference(self, reference: torch.Tensor) -> torch.Tensor:
        """The reference pass on this layer alone: stores the statistics of ``reference`` and
        returns it batch-normalised with them."""
        self._check_input(reference, "reference")
        if reference.numel() == self.num_features:
            raise ValueError(
                f"reference: expected more than one value per channel (a batch of several samples), got shape "
                f"{tuple(reference.shape)}"
            )
        acc = self._accumulate(reference)
        dims = [0, *range(2, reference.dim())]
        self._reference = (acc.mean(dims), acc.square().mean(dims), reference.shape[0])
        # Batch norm of the reference batch itself: one fused, differentiable training-mode kernel.
        return F.batch_norm(reference, None, None, self.weight, self.bias, True, 0.0, self.eps)

    def clear_reference(self) -> None:
        """Drops the stored statistics (and the graph they hold)."""
        self._reference = None

    @property
    def has_reference(self) -> bool:
        return self._reference is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.recording:
            return self.set_reference(x)
        self._check_input(x)
        if self._reference is None:
            raise ValueError(
                f"{type(self).__name__}: no reference batch yet; run the network on its reference batch inside "
                "`with record_reference(network):` (or call set_reference on this layer) before normalising"
            )
        ref_mean, ref_meansq, count = self._reference
        if ref_mean.device != x.device:
            raise ValueError(f"x: on {x.device}, but the reference statistics are on {ref_mean.device}")
        n, c = x.shape[:2]
        acc = self._accumulate(x)
        if self.include_sample:
            # Statistics of the reference batch with x appended: x weighs 1/(R+1).
            new = 1.0 / (count + 1)
            spatial = list(range(2, x.dim()))
            own_mean = acc.mean(spatial) if spatial else acc
            own_meansq = acc.square().mean(spatial) if spatial else acc.square()
            mean = torch.lerp(ref_mean.to(acc.dtype).expand(n, c), own_mean, new)  # (N, C)
            meansq = torch.lerp(ref_meansq.to(acc.dtype).expand(n, c), own_meansq, new)
        else:
            mean, meansq = ref_mean.to(acc.dtype), ref_meansq.to(acc.dtype)  # (C,)
        var = (meansq - mean.square()).clamp_min(0.0)  # E[x^2] - E[x]^2 can round below 0
        if not (torch.is_grad_enabled() and (mean.requires_grad or var.requires_grad)):
            return self._fused(x, mean, var)
        shape = ((n, c) if mean.dim() == 2 else (1, c)) + (1,) * (x.dim() - 2)
        y = (acc - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            affine_shape = (1, c) + (1,) * (x.dim() - 2)
            y = torch.addcmul(self.bias.view(affine_shape), y, self.weight.view(affine_shape))
        return y.to(x.dtype)

    def _fused(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """F.batch_norm in eval mode with the given statistics: per channel (C,), or per sample and
        channel (N, C) on x viewed as one sample of N*C channels."""
        if mean.dim() == 1:
            return F.batch_norm(x, mean.to(x.dtype), var.to(x.dtype), self.weight, self.bias, False, 0.0, self.eps)
        n = x.shape[0]
        weight = self.weight.repeat(n) if self.affine else None
        bias = self.bias.repeat(n) if self.affine else None
        flat = x.reshape(1, n * self.num_features, *x.shape[2:])
        y = F.batch_norm(
            flat, mean.reshape(-1).to(x.dtype), var.reshape(-1).to(x.dtype), weight, bias, False, 0.0, self.eps
        )
        return y.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}, include_sample={self.include_sample}" + (
            f", reference of {self._reference[2]}" if self._reference is not None else ""
        )


class VirtualBatchNorm1d(_VirtualBatchNorm):
    """Virtual batch normalization of (N, C) or (N, C, L) inputs: ``VirtualBatchNorm1d(num_features,
    eps=1e-5, affine=True, include_sample=True)``."""

    _dims = (2, 3)
    _shapes = "(N, C) or (N, C, L)"


class VirtualBatchNorm2d(_VirtualBatchNorm):
    """Virtual batch normalization of (N, C, H, W) inputs: ``VirtualBatchNorm2d(num_features,
    eps=1e-5, affine=True, include_sample=True)``."""

    _dims = (4,)
    _shapes = "(N, C, H, W)"


VirtualBatchNorm1d.__doc__ += "\n\n" + _VirtualBatchNorm.__doc__
VirtualBatchNorm2d.__doc__ += "\n\n" + _VirtualBatchNorm.__doc__


@contextlib.contextmanager
def record_reference(module: nn.Module):
    """Inside this block every VirtualBatchNorm1d/2d of ``module`` takes the batch it sees as its
    reference batch (stores its statistics). Run the network once on the reference batch here,
    each training step: the statistics follow the current parameters of the layers before."""
    if not isinstance(module, nn.Module):
        raise ValueError(f"module: expected an nn.Module, got {type(module).__name__}")
    layers = [m for m in module.modules() if isinstance(m, _VirtualBatchNorm)]
    if not layers:
        raise ValueError("module: has no VirtualBatchNorm1d/VirtualBatchNorm2d layer")
    for layer in layers:
        layer.recording = True
        layer.clear_reference()
    try:
        yield module
    finally:
        for layer in layers:
            layer.recording = False
    missing = [name for name, m in module.named_modules() if isinstance(m, _VirtualBatchNorm) and not m.has_reference]
    if missing:
        raise ValueError(f"module: the reference pass did not reach the VirtualBatchNorm layers {missing}")
