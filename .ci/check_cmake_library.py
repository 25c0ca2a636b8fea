"""Proves the CMake build works: loads the library built by CMakeLists.txt with
torch.ops.load_library in a process that never imports batchgan_ext, and checks its ops
(forward and C++ autograd) against formulas written here.

    python .ci/check_cmake_library.py build-cmake/libbatchgan_ops.so
"""

import json
import sys

import torch


def main(path):
    torch.ops.load_library(path)
    info = json.loads(torch.ops.batchgan._build_info())
    print("loaded", path, info)

    real = torch.randn(6, 3, 4, 4, requires_grad=True)
    fake = torch.randn(6, 3, 4, 4, requires_grad=True)
    beta = torch.tensor([True, False, False, True, True, False])
    out = torch.ops.batchgan.mix(real, fake, beta, True)
    b = beta.view(-1, 1, 1, 1)
    expected = torch.cat([torch.where(b, real, fake), torch.where(b, fake, real)])
    assert torch.equal(out, expected), "mix forward differs"
    grad = torch.randn_like(out)
    out.backward(grad)
    assert torch.equal(real.grad, torch.where(b, grad[:6], grad[6:])), "mix backward differs"

    logits = torch.randn(8, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0.25, 1.0], dtype=torch.float64)
    loss = torch.ops.batchgan.bernoulli_kl_loss(logits, target, "mbgan", 2, "mean")
    u = target.repeat_interleave(4)
    v = torch.sigmoid(logits)
    ref = (torch.xlogy(u, u) - u * torch.log(v) + torch.xlogy(1 - u, 1 - u) - (1 - u) * torch.log(1 - v)).mean()
    torch.testing.assert_close(loss, ref)
    loss.backward()
    torch.testing.assert_close(logits.grad, (v - u).detach() / 8)
    print("CMake-built library OK: mix and bernoulli_kl_loss match, autograd works")


if __name__ == "__main__":
    main(sys.argv[1])
