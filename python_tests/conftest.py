import os

import pytest
import torch

import batchgan_ext  # noqa: F401  (registers torch.ops.batchgan.*)

FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

# Comparison tolerances per dtype for results that are computed in float32 or better and
# rounded once to the output dtype.
TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float16: dict(rtol=1e-3, atol=1e-3),
    torch.bfloat16: dict(rtol=1e-2, atol=1e-2),
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# The backends that the tests taking the `emulated` fixture compare with the CPU kernels, from
# BATCHGAN_TEST_BACKENDS (comma-separated): "emulated" (the default: the CUDA kernels run by the CPU
# emulator) and "cuda" (the real kernels on a GPU; benchmarks/gpu_check.sh sets "emulated,cuda").
TEST_BACKENDS = ("emulated", "cuda")


def parse_test_backends(value: str) -> list[str]:
    backends = [b.strip() for b in value.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(TEST_BACKENDS))
    if unknown or not backends:
        expected = f"a comma-separated subset of {TEST_BACKENDS}"
        raise pytest.UsageError(f"BATCHGAN_TEST_BACKENDS: expected {expected}, got {value!r}")
    return backends


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "emulated_only: passes invalid values to the backend, which on CUDA are device-side asserts "
        "that end the process's CUDA context; never run on the cuda backend",
    )


def pytest_generate_tests(metafunc):
    backends = parse_test_backends(os.environ.get("BATCHGAN_TEST_BACKENDS", "emulated"))
    if "emulated" not in metafunc.fixturenames or backends == ["emulated"]:
        return  # the default: test ids stay as they are
    if metafunc.definition.get_closest_marker("emulated_only"):
        backends = [b for b in backends if b != "cuda"]
    metafunc.parametrize("emulated", backends, indirect=True, scope="session")


class CudaOps:
    """torch.ops.batchgan's ops called on CUDA copies of the CPU tensors a test passes, their
    results copied back: a test written against the emulated kernels then checks the real ones."""

    def __init__(self, ops):
        self._ops = ops

    def __getattr__(self, name):
        op = getattr(self._ops, name)

        def on_cuda(*args, **kwargs):
            out = op(*moved_tensors(args, "cpu", "cuda"), **moved_tensors(kwargs, "cpu", "cuda"))
            return moved_tensors(out, "cuda", "cpu")

        return on_cuda


def moved_tensors(value, source: str, target: str):
    """value with every tensor on `source` copied to `target` (others, e.g. meta tensors, kept)."""
    if isinstance(value, torch.Tensor):
        return value.to(target) if value.device.type == source else value
    if isinstance(value, (list, tuple)):
        return type(value)(moved_tensors(v, source, target) for v in value)
    if isinstance(value, dict):
        return {k: moved_tensors(v, source, target) for k, v in value.items()}
    return value


@pytest.fixture(scope="session")
def emulated(request):
    """torch.ops.batchgan_emulated: the CUDA kernels executed by the CPU emulator; or, where
    BATCHGAN_TEST_BACKENDS includes "cuda", also the real CUDA kernels (CudaOps)."""
    if getattr(request, "param", "emulated") == "cuda":
        if not torch.cuda.is_available():
            pytest.fail("BATCHGAN_TEST_BACKENDS includes cuda, but torch.cuda.is_available() is False")
        return CudaOps(torch.ops.batchgan)
    import batchgan_ext._emulated  # noqa: F401

    return torch.ops.batchgan_emulated


@pytest.fixture(scope="session")
def digit_classifier(tmp_path_factory):
    """The image metrics' digit classifier, trained once per test session into a fresh cache folder
    (10-25 s) under the name load_digit_classifier() looks for, and its path."""
    from batchgan_ext.train import digit_classifier as dc

    path = str(tmp_path_factory.mktemp("cache") / f"digit_classifier-{dc.RECIPE}.pt")
    return dc.load_digit_classifier(path), path


@pytest.fixture
def digit_classifier_cache(digit_classifier, monkeypatch):
    """BATCHGAN_CACHE_DIR set to the session's classifier cache (also for subprocesses), so code
    that calls load_digit_classifier() does not train it again."""
    monkeypatch.setenv("BATCHGAN_CACHE_DIR", os.path.dirname(digit_classifier[1]))
    return digit_classifier[0]
