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

    # pairwise_l1_features (exclude_self, one population): o_ib = sum_{j != i} exp(-|M_ib - M_jb|_1).
    M = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    out = torch.ops.batchgan.pairwise_l1_features(M, 1, True, False, None, 1)
    Mr = M.detach().requires_grad_()
    ref = torch.exp(-(Mr[:, None] - Mr[None]).abs().sum(-1)).sum(1) - 1
    torch.testing.assert_close(out, ref)
    w = torch.randn_like(ref)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    torch.testing.assert_close(M.grad, Mr.grad)

    # minibatch_stddev, group of 2 strided samples, one stddev channel (StyleGAN2-ADA layout).
    x = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    out = torch.ops.batchgan.minibatch_stddev(x, 2, 1)
    xr = x.detach().requires_grad_()
    y = xr.reshape(2, 2, 2, 3, 3)
    s = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=[1, 2, 3])  # one value per group
    ref = torch.cat([xr, s.repeat(2).view(4, 1, 1, 1).expand(4, 1, 3, 3)], 1)
    torch.testing.assert_close(out, ref)
    w = torch.randn_like(ref)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)
    print(
        "CMake-built library OK: mix, bernoulli_kl_loss, pairwise_l1_features and minibatch_stddev match, "
        "autograd works"
    )


if __name__ == "__main__":
    main(sys.argv[1])
