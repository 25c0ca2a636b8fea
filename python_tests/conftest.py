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


@pytest.fixture(scope="session")
def emulated():
    """torch.ops.batchgan_emulated: the CUDA kernels executed by the CPU emulator."""
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
