"""Shared pieces of the property-fuzzing tests (test_fuzz_*.py): hypothesis settings, tensor
strategies (shapes with 0- and 1-sized dims, dtypes, non-contiguous views, inf/NaN values) and
the check every case ends in: either the op matches the naive reference (and the emulated CUDA
kernel matches the CPU kernel), or it raises a ValueError/RuntimeError naming the argument at
fault.

Budget: BATCHGAN_FUZZ_EXAMPLES examples per test (default 50, CI's budget: raise it locally, e.g.
BATCHGAN_FUZZ_EXAMPLES=500). Examples are derandomized (fixed per test), so CI is reproducible.
"""

import contextlib
import faulthandler
import os

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("BATCHGAN_FUZZ_EXAMPLES", "50"))
# Seconds one example may take before the process is killed with a traceback: a hang in a
# kernel never returns to Python, so hypothesis's deadline alone could not report it.
CASE_TIMEOUT_S = float(os.environ.get("BATCHGAN_FUZZ_CASE_TIMEOUT_S", "120"))

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,  # timing is bounded by CASE_TIMEOUT_S; CI machines are too noisy for ms deadlines
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
WRONG_DTYPES = [torch.int32, torch.int64, torch.bool, torch.complex64]
LAYOUTS = ["contiguous", "transposed", "stepped", "expanded", "channels_last"]

# Result tolerances per dtype: float32+ accumulation, one rounding to the output dtype.
TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float16: dict(rtol=1e-3, atol=1e-3),
    torch.bfloat16: dict(rtol=1e-2, atol=1e-2),
}
# Results with a product through ATen in the input dtype (the equivariant layers).
PRODUCT_TOLERANCES = {
    torch.float64: dict(rtol=1e-9, atol=1e-9),
    torch.float32: dict(rtol=1e-4, atol=1e-4),
    torch.float16: dict(rtol=5e-2, atol=1e-1),
    torch.bfloat16: dict(rtol=5e-2, atol=1e-1),
}

# Integers for a count argument that no valid call takes, besides 0 and negatives.
HUGE_INTS = [2**31, 2**40, 2**62, 2**63 - 1]
# Values of the wrong Python type for an int argument (the wrappers' checks).
NON_INTS = [2.5, 2.0, True, False, "2", None, [2], 2**63, 2**70, -(2**70)]
NON_BOOLS = [0, 1, 2, 0.0, "True", "", None, [True]]
NON_REALS = ["0.5", None, True, [0.5], torch.tensor([0.5, 0.5])]


def _counter_path():
    return os.environ.get("BATCHGAN_FUZZ_COUNT_FILE")


class CaseCounter:
    """Counts the cases run (for the report of a local run): BATCHGAN_FUZZ_COUNT_FILE=path appends
    one line per test with its count."""

    def __init__(self):
        self.counts = {}

    def add(self, name):
        self.counts[name] = self.counts.get(name, 0) + 1

    def flush(self):
        path = _counter_path()
        if path and self.counts:
            with open(path, "a") as f:
                for name, count in sorted(self.counts.items()):
                    f.write(f"{name} {count}\n")
        self.counts.clear()


COUNTER = CaseCounter()


@pytest.fixture(scope="module", autouse=True)
def flush_case_counts():
    """Writes the module's case counts when it ends (autouse in the test_fuzz_*.py that import it)."""
    yield
    COUNTER.flush()


@contextlib.contextmanager
def time_bound(name):
    COUNTER.add(name)
    faulthandler.dump_traceback_later(CASE_TIMEOUT_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@st.composite
def values(draw, shape, dtype, layout="contiguous", specials=True, scale=None):
    """A tensor of `shape` and `dtype` in `layout`, random values (from a drawn seed) with a few
    inf/NaN entries when `specials`. Non-contiguous layouts hold the same values:
    transposed (last two dims stored swapped), stepped (every other row of a larger buffer whose
    other rows are NaN, so reading the wrong rows shows), expanded (a size-1 dim broadcast),
    channels_last (4-d)."""
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    if scale is None:
        scale = draw(st.sampled_from([1.0, 0.1, 4.0]))
    numel = 1
    for s in shape:
        numel *= s
    expand_dim = None
    if layout == "expanded":
        dims = [d for d, s in enumerate(shape) if s > 1]
        if dims:
            expand_dim = draw(st.sampled_from(dims))
    base_shape = list(shape)
    if expand_dim is not None:
        base_shape[expand_dim] = 1
    x = torch.randn(base_shape, generator=g, dtype=torch.float64) * scale
    if specials and x.numel() > 0 and draw(st.integers(0, 2)) == 0:
        flat = x.view(-1)
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, flat.numel() - 1))
            flat[i] = draw(st.sampled_from([float("inf"), float("-inf"), float("nan")]))
    if dtype in (torch.int32, torch.int64):
        x = torch.nan_to_num(x, nan=0.0, posinf=7.0, neginf=-7.0).round().to(dtype)
    else:
        x = x.to(dtype)
    if expand_dim is not None:
        return x.expand(*shape)
    if layout == "transposed" and x.dim() >= 2:
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "stepped" and x.dim() >= 1:
        big_shape = (2 * x.shape[0],) + tuple(x.shape[1:])
        fill = float("nan") if x.is_floating_point() or x.is_complex() else 0
        big = torch.full(big_shape, fill, dtype=dtype) if dtype != torch.bool else torch.zeros(big_shape, dtype=dtype)
        big[::2] = x
        return big[::2]
    if layout == "channels_last" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def faults(*kinds, valid=3):
    """The fault a case strategy injects: None (a valid case) `valid` times in `valid + len(kinds)`,
    else one of `kinds`."""
    return st.sampled_from([None] * valid + list(kinds))


def num_sets_for(draw, batch):
    """A set count that splits `batch` samples: one of its divisors."""
    return draw(st.sampled_from([k for k in range(1, batch + 1) if batch % k == 0]))


def bad_num_sets(draw, batch):
    """A set count no call on `batch` samples takes: 0, negative, more than `batch`, a huge int64, or
    one that does not divide `batch`."""
    return draw(
        st.sampled_from(
            [0, -1, -batch, batch + 1] + HUGE_INTS + ([k for k in range(2, batch) if batch % k] or [batch + 2])
        )
    )


def int_arg(valid):
    """A strategy for an int argument of the ops: a valid value (most of the time), or 0, a
    negative or a huge int64 (invalid for every count)."""
    return st.one_of(valid, valid, valid, st.sampled_from([0, -1, -7] + HUGE_INTS))


def wrong_int():
    """Python values that a wrapper must reject for an int argument."""
    return st.sampled_from(NON_INTS)


def assert_names(error, names):
    """The error message names one of `names` (the argument at fault)."""
    message = str(error)
    assert any(n in message for n in names), f"expected an error naming {names}, got: {message!r}"


def expect_error(fn, names, errors=(ValueError, RuntimeError)):
    """fn() raises one of `errors` whose message names one of `names`."""
    try:
        fn()
    except errors as e:
        assert_names(e, names)
        return e
    raise AssertionError(f"expected an error naming {names}, the call succeeded")


def assert_matches(got, expected, dtype, tolerances=TOLERANCES, msg=""):
    """got (any dtype) against a float64 expectation; NaN positions must match, infs too."""
    assert got.shape == expected.shape, f"{msg}: shape {tuple(got.shape)} != {tuple(expected.shape)}"
    torch.testing.assert_close(
        got.double(), expected.double(), equal_nan=True, **tolerances[dtype], msg=lambda m: f"{msg}: {m}"
    )


def run_both(cpu_fn, emulated_fn):
    """Runs the CPU and the emulated-CUDA call; both succeed, or both raise. Returns
    (cpu_result, emulated_result) or raises the CPU error after checking the emulated one
    raised too (with the same type)."""
    cpu_err = emu_err = None
    cpu = emu = None
    try:
        cpu = cpu_fn()
    except (ValueError, RuntimeError) as e:
        cpu_err = e
    try:
        emu = emulated_fn()
    except (ValueError, RuntimeError) as e:
        emu_err = e
    if (cpu_err is None) != (emu_err is None):
        raise AssertionError(f"CPU and emulated kernels disagree on validity: cpu={cpu_err!r} emulated={emu_err!r}")
    if cpu_err is not None:
        raise cpu_err
    return cpu, emu


def check_op(emulated, name, args, names, expected, dtype, tolerances=TOLERANCES):
    """One case of torch.ops.batchgan.<name>(*args) against the emulated CUDA kernel: with `names`
    (a fault), both raise an error naming one of them; else both return `dtype` and match
    expected() (float64, from the naive reference)."""
    cpu_op, emu_op = getattr(torch.ops.batchgan, name), getattr(emulated, name)
    with time_bound(name):
        if names is not None:
            for op in (cpu_op, emu_op):
                expect_error(lambda: op(*args), names)
            return
        cpu, emu = run_both(lambda: cpu_op(*args), lambda: emu_op(*args))
        want = expected()
        assert cpu.dtype == dtype and emu.dtype == dtype, f"dtypes cpu={cpu.dtype} emulated={emu.dtype}, want {dtype}"
        assert_matches(cpu, want, dtype, tolerances, msg="cpu")
        assert_matches(emu, want, dtype, tolerances, msg="emulated")
