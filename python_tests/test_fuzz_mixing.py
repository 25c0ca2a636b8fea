"""Property fuzzing of the mixed-batch ops: mix, bernoulli_kl_loss, batch_generator_loss,
sample_mixing and the MixedBatch / BernoulliKLLoss modules (see fuzz_common.py)."""

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import batchgan_ext as bg
from batchgan_ext._reference.mixing import bernoulli_kl_loss_reference, mix_reference

from fuzz_common import (
    FLOATS,
    FUZZ,
    LAYOUTS,
    NON_BOOLS,
    NON_REALS,
    WRONG_DTYPES,
    assert_matches,
    check_op,
    expect_error,
    faults,
    flush_case_counts,  # noqa: F401  (autouse fixture)
    int_arg,
    time_bound,
    values,
    wrong_int,
)

# Fuzz cases include invalid values: on CUDA a device-side assert, which ends the CUDA context.
pytestmark = pytest.mark.emulated_only

# --------------------------------------------------------------------------------------------
# mix

# mix is a gather: exact, NaN where the chosen sample holds NaN.
EXACT = {dtype: dict(rtol=0, atol=0) for dtype in FLOATS}

MIX_FAULTS = faults("real_dtype", "real_0d", "fake_dtype", "fake_shape", "beta_shape", "beta_values", "beta_dtype")


@st.composite
def mix_cases(draw):
    fault = draw(MIX_FAULTS)
    batch = draw(st.integers(0, 5))
    sample = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    if draw(st.booleans()):
        sample = (draw(st.integers(1, 3)),) + sample[:2]
    shape = (batch,) + sample
    dtype = draw(st.sampled_from(FLOATS))
    layout = draw(st.sampled_from(LAYOUTS))
    real = draw(values(shape, dtype, layout))
    fake = draw(values(shape, dtype, draw(st.sampled_from(LAYOUTS))))
    beta_kind = draw(st.sampled_from(["bool", "int", "float", "stepped"]))
    mask = draw(st.lists(st.booleans(), min_size=batch, max_size=batch))
    beta = torch.tensor(mask, dtype=torch.bool)
    if beta_kind == "int":
        beta = beta.to(torch.int64)
    elif beta_kind == "float":
        beta = beta.to(torch.float32)
    elif beta_kind == "stepped":
        beta = torch.stack([beta, ~beta], 1).reshape(-1)[::2]
    names = None
    if fault == "real_dtype":
        wrong = draw(st.sampled_from(WRONG_DTYPES))
        real, fake = real.to(wrong), fake.to(wrong)
        names = ("real",)
    elif fault == "real_0d":
        real, fake = torch.tensor(1.0, dtype=dtype), torch.tensor(2.0, dtype=dtype)
        names = ("real",)
    elif fault == "fake_dtype":
        fake = fake.to(draw(st.sampled_from([d for d in FLOATS + WRONG_DTYPES if d != dtype])))
        names = ("fake",)
    elif fault == "fake_shape":
        fake = torch.zeros((batch + 1,) + sample, dtype=dtype)
        names = ("fake",)
    elif fault == "beta_shape":
        beta = draw(
            st.sampled_from(
                [torch.ones(batch + 1, dtype=torch.bool), torch.ones(batch, 1, dtype=torch.bool), torch.tensor(True)]
            )
        )
        names = ("beta",)
    elif fault == "beta_values":
        if batch == 0:
            beta = torch.ones(batch + 2, dtype=torch.bool)
        else:
            bad = draw(st.sampled_from([2.0, -1.0, 0.5, float("nan"), float("inf")]))
            beta = beta.to(torch.float32)
            beta[draw(st.integers(0, batch - 1))] = bad
        names = ("beta",)
    elif fault == "beta_dtype":
        beta = beta.to(torch.complex64) if batch > 0 else torch.ones(batch + 2, dtype=torch.complex64)
        names = ("beta",)
    complement = draw(st.booleans())
    return real, fake, beta, complement, names


@FUZZ
@given(case=mix_cases())
def test_fuzz_mix_op(emulated, case):
    real, fake, beta, complement, names = case

    def expected():
        out = mix_reference(real, fake, beta, complement)
        return torch.cat(out) if complement else out

    check_op(emulated, "mix", (real, fake, beta, complement), names, expected, real.dtype, EXACT)


@FUZZ
@given(case=mix_cases(), complement=st.one_of(st.booleans(), st.sampled_from(NON_BOOLS)))
def test_fuzz_mix_function_and_module(case, complement):
    real, fake, beta, _, names = case
    with time_bound("mix_function"):
        if not isinstance(complement, bool):
            expect_error(lambda: bg.mix(real, fake, beta, complement), ("complement",))
            expect_error(lambda: bg.MixedBatch(0.5, 1, complement), ("complement",))
            return
        if names is not None:
            expect_error(lambda: bg.mix(real, fake, beta, complement), names)
            return
        got = bg.mix(real, fake, beta, complement)
        expected = mix_reference(real, fake, beta, complement)
        if not complement:
            got, expected = (got,), (expected,)
        for a, e in zip(got, expected):
            torch.testing.assert_close(a, e, rtol=0, atol=0, equal_nan=True)


@st.composite
def mixed_batch_args(draw):
    gamma = draw(
        st.one_of(
            st.floats(0, 0.5), st.sampled_from([-0.1, 0.6, float("nan"), float("inf")]), st.sampled_from(NON_REALS)
        )
    )
    num_sets = draw(st.one_of(int_arg(st.integers(1, 4)), wrong_int()))
    complement = draw(st.one_of(st.booleans(), st.booleans(), st.sampled_from(NON_BOOLS)))
    batch = draw(st.integers(1, 8))
    return gamma, num_sets, complement, batch


@FUZZ
@given(args=mixed_batch_args(), seed=st.integers(0, 2**31 - 1))
def test_fuzz_mixed_batch_module_and_sample_mixing(args, seed):
    gamma, num_sets, complement, batch = args
    with time_bound("MixedBatch"):
        real, fake = torch.randn(batch, 3), torch.randn(batch, 3)
        bad_gamma = not (isinstance(gamma, float) and 0 <= gamma <= 0.5)
        bad_sets = isinstance(num_sets, bool) or not isinstance(num_sets, int) or num_sets < 1 or num_sets >= 2**63
        if bad_gamma:
            expect_error(lambda: bg.MixedBatch(gamma, 1, True), ("gamma",))
            expect_error(lambda: bg.sample_mixing(batch, 1, gamma), ("gamma",))
            return
        if bad_sets:
            expect_error(lambda: bg.MixedBatch(gamma, num_sets, True), ("num_sets",))
            expect_error(lambda: bg.sample_mixing(batch, num_sets, gamma), ("num_sets",))
            return
        if not isinstance(complement, bool):
            expect_error(lambda: bg.MixedBatch(gamma, num_sets, complement), ("complement",))
            return
        module = bg.MixedBatch(gamma, num_sets, complement)
        if batch % num_sets != 0:
            expect_error(lambda: module(real, fake), ("num_sets",))
            expect_error(lambda: bg.sample_mixing(batch, num_sets, gamma), ("num_sets",))
            return
        out, target, beta = module(real, fake, generator=torch.Generator().manual_seed(seed))
        assert beta.dtype == torch.bool and beta.shape == (batch,)
        t = beta.view(num_sets, -1).float().mean(1)
        if gamma == 0:
            assert set(t.tolist()) <= {0.0, 1.0}
        expected = mix_reference(real, fake, beta, complement)
        if complement:
            torch.testing.assert_close(out, torch.cat(expected), rtol=0, atol=0)
            torch.testing.assert_close(target, torch.cat([t, 1 - t]))
        else:
            torch.testing.assert_close(out, expected, rtol=0, atol=0)
            torch.testing.assert_close(target, t)
        # sample_mixing is deterministic under a generator, and gives the module's draws.
        b2, t2 = bg.sample_mixing(batch, num_sets, gamma, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(b2, beta) and torch.equal(t2, t)


# --------------------------------------------------------------------------------------------
# bernoulli_kl_loss, batch_generator_loss

KL_FAULTS = faults(
    "logits_dtype",
    "logits_shape",
    "logits_empty",
    "num_sets",
    "target_shape",
    "target_values",
    "target_dtype",
    "mode",
    "reduction",
)


@st.composite
def kl_cases(draw):
    fault = draw(KL_FAULTS)
    num_sets = draw(st.integers(1, 5))
    set_size = draw(st.integers(1, 4))
    batch = num_sets * set_size
    dtype = draw(st.sampled_from(FLOATS))
    shape = (batch,) if draw(st.booleans()) else (batch, 1)
    logits = draw(values(shape, dtype, draw(st.sampled_from(["contiguous", "stepped", "expanded"]))))
    t_kind = draw(st.sampled_from(["random", "ends"]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if t_kind == "ends":
        target = (torch.rand(num_sets, generator=g) < 0.5).double()
    else:
        target = torch.rand(num_sets, generator=g, dtype=torch.float64)
    target = target.to(draw(st.sampled_from(FLOATS)))
    mode = draw(st.sampled_from(["bgan", "mbgan"]))
    reduction = draw(st.sampled_from(["none", "mean", "sum"]))
    names = None
    if fault == "logits_dtype":
        logits = logits.to(draw(st.sampled_from(WRONG_DTYPES)))
        names = ("logits",)
    elif fault == "logits_shape":
        logits = draw(
            st.sampled_from(
                [
                    torch.zeros(batch, 2, dtype=dtype),
                    torch.zeros((), dtype=dtype),
                    torch.zeros(batch, 1, 1, dtype=dtype),
                ]
            )
        )
        names = ("logits",)
    elif fault == "logits_empty":
        logits = torch.zeros(0, dtype=dtype)
        names = ("logits",)
    elif fault == "num_sets":
        num_sets = draw(
            st.sampled_from(
                [0, -1, -num_sets, batch + 1, 2**31, 2**40, 2**62, 2**63 - 1]
                + ([k for k in range(2, batch) if batch % k] or [batch + 3])
            )
        )
        names = ("num_sets",)
    elif fault == "target_shape":
        target = draw(st.sampled_from([torch.rand(num_sets + 1), torch.rand(num_sets, 2), torch.rand(0)]))
        names = ("target",)
    elif fault == "target_values":
        bad = draw(st.sampled_from([-0.1, 1.5, float("nan"), float("inf"), -float("inf")]))
        target = target.clone()
        target[draw(st.integers(0, num_sets - 1))] = bad
        names = ("target",)
    elif fault == "target_dtype":
        target = target.to(draw(st.sampled_from(WRONG_DTYPES)))
        names = ("target",)
    elif fault == "mode":
        mode = draw(st.sampled_from(["BGAN", "", "m-bgan", "mbgan "]))
        names = ("mode",)
    elif fault == "reduction":
        reduction = draw(st.sampled_from(["avg", "None", "", "batchmean"]))
        names = ("reduction",)
    return logits, target, mode, num_sets, reduction, names


def _kl_expected(logits, target, mode, num_sets, reduction):
    return bernoulli_kl_loss_reference(logits.double(), target.double(), mode, num_sets, reduction)


_INF = float("inf")


@FUZZ
@given(case=kl_cases())
# Infinite logits at the targets 0 and 1 (the limits, not 0 * inf), both modes.
@example(case=(torch.tensor([_INF, -_INF, 0.5, _INF]), torch.tensor([1.0, 0.0, 1.0, 0.5]), "mbgan", 4, "none", None))
@example(case=(torch.tensor([_INF, 3.0, -_INF, -_INF]), torch.tensor([1.0, 0.0]), "bgan", 2, "none", None))
def test_fuzz_bernoulli_kl_loss_op(emulated, case):
    *args, names = case
    check_op(emulated, "bernoulli_kl_loss", args, names, lambda: _kl_expected(*args), args[0].dtype)


@FUZZ
@given(case=kl_cases(), wrong=st.sampled_from([None, None, "num_sets", "target", "mode", "reduction"]), data=st.data())
def test_fuzz_bernoulli_kl_loss_function_and_module(case, wrong, data):
    logits, target, mode, num_sets, reduction, names = case
    with time_bound("bernoulli_kl_loss_function"):
        scalar_target = data.draw(st.booleans()) and names is None
        if scalar_target:
            u = data.draw(st.sampled_from([0.0, 1.0, 0.25, 1, 0]))
            target = u
        if wrong == "num_sets":
            num_sets = data.draw(wrong_int())
            names = ("num_sets",) + (names or ())
        elif wrong == "target" and scalar_target:
            target = data.draw(st.sampled_from(["0.5", True, None, [0.5]]))
            names = ("target",) + (names or ())
        elif wrong == "mode":
            mode = data.draw(st.sampled_from([None, 1, b"bgan"]))
            names = ("mode",) + (names or ())
        elif wrong == "reduction":
            reduction = data.draw(st.sampled_from([None, 0, b"mean"]))
            names = ("reduction",) + (names or ())
        if names is not None:
            expect_error(lambda: bg.bernoulli_kl_loss(logits, target, mode, num_sets, reduction), names)
            if (
                isinstance(mode, str)
                and mode in ("bgan", "mbgan")
                and isinstance(reduction, str)
                and reduction in ("none", "mean", "sum")
                and "target" not in names
            ):
                expect_error(lambda: bg.BernoulliKLLoss(mode, num_sets, reduction)(logits, target), names)
            if "target" not in names:
                expect_error(lambda: bg.batch_generator_loss(logits, mode, num_sets, reduction), names)
            return
        got = bg.bernoulli_kl_loss(logits, target, mode, num_sets, reduction)
        t = torch.full((num_sets,), float(target)) if scalar_target else target
        expected = _kl_expected(logits, t, mode, num_sets, reduction)
        assert_matches(got, expected, logits.dtype, msg="function")
        got = bg.BernoulliKLLoss(mode, num_sets, reduction)(logits, t.to(logits.dtype))
        expected = _kl_expected(logits, t.to(logits.dtype), mode, num_sets, reduction)
        assert_matches(got, expected, logits.dtype, msg="module")
        got = bg.batch_generator_loss(logits, mode, num_sets, reduction)
        expected = _kl_expected(logits, torch.ones(num_sets), mode, num_sets, reduction)
        assert_matches(got, expected, logits.dtype, msg="batch_generator_loss")


@FUZZ
@given(
    mode=st.one_of(st.sampled_from(["bgan", "mbgan"]), st.sampled_from(["x", None, 3])),
    num_sets=st.one_of(st.integers(1, 4), wrong_int(), st.sampled_from([0, -2])),
    reduction=st.one_of(st.sampled_from(["none", "mean", "sum"]), st.sampled_from(["x", None, 3])),
)
def test_fuzz_bernoulli_kl_module_arguments(mode, num_sets, reduction):
    with time_bound("BernoulliKLLoss"):
        if mode not in ("bgan", "mbgan"):
            expect_error(lambda: bg.BernoulliKLLoss(mode, 1, "mean"), ("mode",))
        elif reduction not in ("none", "mean", "sum"):
            expect_error(lambda: bg.BernoulliKLLoss(mode, 1, reduction), ("reduction",))
        elif isinstance(num_sets, bool) or not isinstance(num_sets, int) or not 1 <= num_sets < 2**63:
            expect_error(lambda: bg.BernoulliKLLoss(mode, num_sets, reduction), ("num_sets",))
        else:
            module = bg.BernoulliKLLoss(mode, num_sets, reduction)
            assert module.num_sets == num_sets and type(module.num_sets) is int
