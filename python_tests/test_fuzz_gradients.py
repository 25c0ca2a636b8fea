"""Property fuzzing of the gradients: for finite float64 inputs of random shapes, set counts and
options, each op's backward (C++ autograd, fused backward kernels) matches autograd through the
naive reference. Gradients at inf/NaN inputs are not specified (see fuzz_common.py)."""

import torch
from hypothesis import given
from hypothesis import strategies as st

import batchgan_ext as bg
from batchgan_ext._reference.equivariant import equivariant_linear_reference, set_mean_reference
from batchgan_ext._reference.minibatch import minibatch_stddev_reference, pairwise_l1_features_reference
from batchgan_ext._reference.mixing import bernoulli_kl_loss_reference, mix_reference

from fuzz_common import (
    FUZZ,
    flush_case_counts,  # noqa: F401  (autouse fixture)
    time_bound,
    values,
)

TOL = dict(rtol=1e-7, atol=1e-9)


def _x(draw, shape):
    layout = draw(st.sampled_from(["contiguous", "transposed"]))
    return draw(values(shape, torch.float64, layout, specials=False)).requires_grad_()


@st.composite
def gradient_cases(draw):
    """(name, inputs, op(*inputs), reference(*inputs))."""
    op = draw(
        st.sampled_from(
            ["mix", "bernoulli_kl_loss", "set_mean", "equivariant_linear", "pairwise_l1_features", "minibatch_stddev"]
        )
    )
    num_sets = draw(st.integers(1, 3))
    n = num_sets * draw(st.integers(1, 4))
    if op == "mix":
        shape = (n,) + tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
        real, fake = _x(draw, shape), _x(draw, shape)
        beta = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
        comp = draw(st.booleans())

        def ref(r, f):
            out = mix_reference(r, f, beta, comp)
            return torch.cat(out) if comp else out

        return op, (real, fake), lambda r, f: torch.ops.batchgan.mix(r, f, beta, comp), ref
    if op == "bernoulli_kl_loss":
        logits = _x(draw, (n,))
        target = torch.rand(
            num_sets, dtype=torch.float64, generator=torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
        )
        target = target.requires_grad_(draw(st.booleans()))
        mode = draw(st.sampled_from(["bgan", "mbgan"]))
        reduction = draw(st.sampled_from(["none", "mean", "sum"]))
        inputs = (logits, target) if target.requires_grad else (logits,)

        def call(fn):
            return lambda *a: fn(a[0], a[1] if len(a) > 1 else target, mode, num_sets, reduction)

        return op, inputs, call(bg.bernoulli_kl_loss), call(bernoulli_kl_loss_reference)
    if op == "set_mean":
        x = _x(draw, (n,) + tuple(draw(st.lists(st.integers(1, 3), max_size=2))))
        return op, (x,), lambda x: bg.set_mean(x, num_sets), lambda x: set_mean_reference(x, num_sets)
    if op == "equivariant_linear":
        fin, fout = draw(st.integers(1, 5)), draw(st.integers(1, 4))
        x, w, wg, b = _x(draw, (n, fin)), _x(draw, (fout, fin)), _x(draw, (fout, fin)), _x(draw, (fout,))
        act = draw(st.sampled_from(["identity", "relu", "leaky_relu"]))
        return (
            op,
            (x, w, wg, b),
            lambda *a: bg.equivariant_linear(*a, num_sets, act, 0.2),
            lambda *a: equivariant_linear_reference(*a, num_sets=num_sets, activation=act, negative_slope=0.2),
        )
    if op == "pairwise_l1_features":
        b, c = draw(st.sampled_from([1, 2, 9])), draw(st.integers(1, 4))
        M = _x(draw, (n, b, c))
        exclude_self, mean = draw(st.booleans()), draw(st.booleans())
        split = None
        if draw(st.booleans()):
            split = torch.tensor(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
        return (
            op,
            (M,),
            lambda M: bg.pairwise_l1_features(M, num_sets, exclude_self, mean, split),
            lambda M: pairwise_l1_features_reference(M, num_sets, exclude_self, mean, split),
        )
    group = draw(st.sampled_from([g for g in range(1, n + 1) if n % g == 0]))
    f = draw(st.integers(1, 2))
    x = _x(draw, (n, f * draw(st.integers(1, 2))) + tuple(draw(st.lists(st.integers(1, 3), max_size=2))))
    return op, (x,), lambda x: bg.minibatch_stddev(x, group, f), lambda x: minibatch_stddev_reference(x, group, f)


@FUZZ
@given(case=gradient_cases(), seed=st.integers(0, 2**31 - 1))
def test_fuzz_gradients_match_reference(case, seed):
    name, inputs, op, reference = case
    with time_bound(f"{name}_backward"):
        out = op(*inputs)
        expected_out = reference(*inputs)
        torch.testing.assert_close(out, expected_out, **TOL)
        grad = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        got = torch.autograd.grad(out, inputs, grad)
        expected = torch.autograd.grad(expected_out, inputs, grad)
        for i, (a, e) in enumerate(zip(got, expected)):
            torch.testing.assert_close(a, e, **TOL, msg=lambda m: f"{name}, input {i}: {m}")
