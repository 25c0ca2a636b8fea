"""No op's CUDA path waits for the device: the host code that the CUDA kernels share (every csrc file
outside a cpu/ folder) reads no device value on the host. A host read (`.item()`, a copy to the CPU,
`nonzero`...) stalls the stream and makes the op impossible to capture in a CUDA graph; checks of
device values go through `check_on_device` (common/checks.h), an asynchronous assert.

The scan is static: without a GPU nothing can count device-to-host copies at run time (the emulated
kernels run on CPU tensors). The emulated ops below show that the asynchronous checks still reject
bad values with the CPU kernels' messages.
"""

import pathlib
import re

import pytest
import torch

import batchgan_ext as bg

from device_sources import CSRC, blank, without_comments

# Calls that read a device value on the host, or wait for the device.
HOST_SYNC_PATTERNS = {
    "item": r"\.item\s*[<(]",
    "cpu copy": r"\.cpu\s*\(|\.to\s*\(\s*(?:at|c10|torch)::(?:kCPU|Device\s*\(\s*(?:at|c10)::kCPU)",
    "tolist": r"\.tolist\s*\(",
    "local scalar": r"_local_scalar_dense|\bis_nonzero\b",
    "data-dependent shape": r"\bnonzero\s*\(|\bmasked_select\s*\(|\bunique\w*\s*\(",
    "tensor comparison on the host": r"\bat::equal\s*\(|\.equal\s*\(|\ballclose\s*\(",
    "device synchronisation": r"\bcuda(?:Device|Stream|Event)Synchronize\b|\bcudaMemcpy\b|\.synchronize\s*\(",
}

_STRING = re.compile(r'"(?:\\.|[^"\\])*"')


def host_syncs(source: str) -> list[tuple[int, str]]:
    """(line, pattern name) of every host sync in C++/CUDA `source`, comments and strings ignored."""

    code = _STRING.sub(blank, without_comments(source))
    found = []
    for number, line in enumerate(code.splitlines(), start=1):
        for name, pattern in HOST_SYNC_PATTERNS.items():
            if re.search(pattern, line):
                found.append((number, name))
    return found


def device_path_sources() -> list[pathlib.Path]:
    """Every C++/CUDA file the CUDA build's ops run through: all of csrc but the CPU kernels (cpu/
    folders, where the values are on the host already)."""
    files = [p for p in CSRC.rglob("*") if p.suffix in {".h", ".cuh", ".cpp", ".cu"} and "cpu" not in p.parts]
    assert len(files) > 20, f"expected the csrc tree at {CSRC}"
    return sorted(files)


def test_device_paths_have_no_host_syncs():
    offending = [
        f"{path.relative_to(CSRC)}:{line}: {name}"
        for path in device_path_sources()
        for line, name in host_syncs(path.read_text())
    ]
    assert not offending, "host syncs in code the CUDA ops run:\n" + "\n".join(offending)


@pytest.mark.parametrize(
    "snippet, name",
    [
        ("const bool ok = t.all().item<bool>();", "item"),
        ("double v = t.sum().item().toDouble();", "item"),
        ("auto h = t.cpu();", "cpu copy"),
        ("auto h = t.to(at::kCPU);", "cpu copy"),
        ("auto h = t.to(c10::Device(c10::kCPU));", "cpu copy"),
        ("auto idx = at::nonzero(mask);", "data-dependent shape"),
        ("auto v = t.masked_select(mask);", "data-dependent shape"),
        ("auto u = at::unique_dim(t, 0);", "data-dependent shape"),
        ("if (at::equal(a, b)) {}", "tensor comparison on the host"),
        ("C10_CUDA_CHECK(cudaStreamSynchronize(stream));", "device synchronisation"),
        ("cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost);", "device synchronisation"),
        ("bool b = at::native::is_nonzero(t);", "local scalar"),
    ],
)
def test_scan_finds_each_kind_of_host_sync(snippet, name):
    assert (1, name) in host_syncs(snippet)


def test_scan_ignores_comments_and_strings():
    source = '// no .item() here\n/* t.cpu() */\nTORCH_CHECK(ok, "call .item() yourself");\nauto x = t.item<float>();\n'
    assert host_syncs(source) == [(4, "item")]


# The asynchronous checks on the device path (the emulated kernels share the CUDA host code) reject
# what the CPU kernels reject, with the same message.
def _bad_calls(ops):
    logits, grad = torch.randn(6), torch.tensor(1.0)
    bad_target = torch.tensor([0.5, 1.5])
    M, bad_split = torch.randn(6, 3, 2), torch.tensor([0, 1, 2, 0, 1, 0])
    real = fake = torch.randn(4, 3)
    return {
        "target": [
            lambda: ops.bernoulli_kl_loss(logits, bad_target, "bgan", 2, "mean"),
            lambda: ops._bernoulli_kl_loss_backward(grad, logits, bad_target, "mbgan", 2, "mean"),
        ],
        "beta": [lambda: ops.mix(real, fake, torch.tensor([0.0, 1.0, 0.5, 1.0]), False)],
        "split": [lambda: ops.pairwise_l1_features(M, 2, True, True, bad_split, 2)],
    }


@pytest.mark.emulated_only  # on CUDA these are device-side asserts, which end the CUDA context
@pytest.mark.parametrize("argument", ["target", "beta", "split"])
def test_device_checks_reject_bad_values_like_cpu(emulated, argument):
    messages = {
        "target": r"target: expected ratios of real samples in \[0, 1\]",
        "beta": r"beta: expected a boolean mask or values in \{0, 1\}",
        "split": r"split: expected labels in \[0, 2\)",
    }
    for ops in (torch.ops.batchgan, emulated):
        for call in _bad_calls(ops)[argument]:
            with pytest.raises(RuntimeError, match=messages[argument]):
                call()


def test_device_checks_pass_good_values(emulated):
    target = torch.tensor([0.0, 1.0])
    logits = torch.randn(6, dtype=torch.float64)
    assert torch.allclose(
        emulated.bernoulli_kl_loss(logits, target.double(), "mbgan", 2, "mean"),
        bg.bernoulli_kl_loss(logits, target.double(), "mbgan", 2),
    )
    beta = torch.tensor([0.0, 1.0, 1.0, 0.0])
    real, fake = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.equal(emulated.mix(real, fake, beta, False), torch.where(beta.bool()[:, None], real, fake))
