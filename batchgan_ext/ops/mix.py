"""``torch.ops.batchgan.mix``: the mixed batch of real and fake samples (BGAN paper, eq. 2).

Kernels in csrc/ops/mix (autograd in C++); fake kernel in ``_meta_registrations``."""

import torch

from ._common import check_bool

__all__ = ["mix"]


def mix(
    real: torch.Tensor, fake: torch.Tensor, beta: torch.Tensor, complement: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The mixed batch ``m_b = real_b if beta_b else fake_b`` (BGAN paper, eq. 2).

    A gather of whole samples, never the arithmetic ``real * beta + fake * (1 - beta)``: it
    costs one copy, is exact, and a NaN or inf in an unused sample does not leak into the
    batch. ``real`` and ``fake`` are (B, ...) tensors of one float dtype (any sample shape;
    channels_last batches stay channels_last); ``beta`` is a bool (or 0/1) tensor of shape (B,).

    With ``complement=True`` returns ``(mixed, complement)``, where ``complement`` is the batch
    of the samples ``mixed`` left out (mask ``1 - beta``, paper section 3.1), so no sample is
    wasted. Both are views of one (2B, ...) tensor, ``torch.ops.batchgan.mix``'s output, which
    a discriminator can also take at once as two sets.

    Backward routes each output gradient to the one sample it came from.
    """
    out = torch.ops.batchgan.mix(real, fake, beta, check_bool(complement, "complement"))
    if not complement:
        return out
    batch = real.shape[0]
    return out[:batch], out[batch:]
