"""The public surface: torch.ops.batchgan's names without a leading underscore are exactly the
documented ops; helper ops are _-prefixed; every op has its emulated CUDA twin."""

import os

import torch

import batchgan_ext as bg

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "README.md")

DOCUMENTED_OPS = {
    "mix",
    "bernoulli_kl_loss",
    "equivariant_conv2d",
    "equivariant_linear",
    "set_mean",
    "pairwise_l1_features",
    "minibatch_stddev",
}


def _ops(namespace):
    prefix = namespace + "::"
    return {name[len(prefix) :] for name in torch._C._dispatch_get_all_op_names() if name.startswith(prefix)}


def test_public_ops_are_exactly_the_documented_ones():
    public = {name for name in _ops("batchgan") if not name.startswith("_")}
    assert public == DOCUMENTED_OPS, (
        f"undocumented public ops: {sorted(public - DOCUMENTED_OPS)}; documented but missing: "
        f"{sorted(DOCUMENTED_OPS - public)} (helper ops must start with '_')"
    )


def test_every_public_op_is_in_the_readme_and_the_package():
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    for name in DOCUMENTED_OPS:
        assert f"torch.ops.batchgan.{name}" in readme, f"README.md does not document torch.ops.batchgan.{name}"
        assert callable(getattr(bg, name, None)), f"batchgan_ext.{name}: no functional wrapper"
        assert name in bg.__all__


def test_every_op_has_an_emulated_cuda_twin():
    import batchgan_ext._emulated  # noqa: F401

    kernels = _ops("batchgan") - {"_build_info"}
    assert kernels <= _ops("batchgan_emulated"), f"no emulated kernel: {sorted(kernels - _ops('batchgan_emulated'))}"
