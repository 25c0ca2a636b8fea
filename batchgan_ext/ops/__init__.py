"""The functional API: one module per op (``torch.ops.batchgan.<op>``)."""

from .bernoulli_kl_loss import batch_generator_loss, bernoulli_kl_loss
from .equivariant_conv2d import equivariant_conv2d
from .equivariant_linear import equivariant_linear
from .minibatch_stddev import minibatch_stddev
from .mix import mix
from .pairwise_l1_features import pairwise_l1_features
from .sample_mixing import sample_mixing
from .set_mean import set_mean

__all__ = [
    "batch_generator_loss",
    "bernoulli_kl_loss",
    "equivariant_conv2d",
    "equivariant_linear",
    "minibatch_stddev",
    "mix",
    "pairwise_l1_features",
    "sample_mixing",
    "set_mean",
]
