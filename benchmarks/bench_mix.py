"""Benchmark of `mix` (BGAN paper, eq. 2, section 3.1): forward + backward of the mixed batch and
its complement, the discriminator input of every BGAN/M-BGAN step.

Candidates, measured round-robin in one run (medians):
  batchgan   torch.ops.batchgan.mix(real, fake, beta, complement=True): a gather of whole samples
  naive      eq. 2 in plain PyTorch, torch.where(beta, real, fake) and its complement
             (batchgan_ext._reference.mixing.mix_reference; the product form real*beta +
             fake*(1-beta) would also turn an unused inf/NaN sample into NaN)
  compiled   torch.compile of `naive`
  floor      copying the same bytes once for the forward (2B samples out) and once for the
             backward (2B samples of gradient back), without autograd

The gradient that the discriminator sends back to the batch is a given tensor, the same for
every candidate.

    python benchmarks/bench_mix.py [--quick]
"""

import sys

import torch

import batchgan_ext as bg
from batchgan_ext._reference.mixing import mix_reference

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import format_time, print_table, quick_main, time_interleaved, write_json

SHAPES = [(64, 3, 32, 32), (64, 3, 64, 64)]
NUM_SETS = 4


def _make_inputs(shape, device="cpu", dtype=torch.float32):
    batch = shape[0]
    real = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    fake = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    beta, _ = bg.sample_mixing(batch, NUM_SETS, 0.5, generator=torch.Generator().manual_seed(0))
    grad_batch = torch.randn((2 * batch,) + tuple(shape[1:]), device=device, dtype=dtype)
    return real, fake, beta.to(device), grad_batch


def _batchgan_step(real, fake, beta, grad_batch):
    batch = torch.ops.batchgan.mix(real, fake, beta, True)
    batch.backward(grad_batch)


def _naive_forward(real, fake, beta):
    return mix_reference(real, fake, beta, complement=True)


def _naive_step(forward, real, fake, beta, grad_batch):
    mixed, comp = forward(real, fake, beta)
    n = real.shape[0]
    torch.autograd.backward([mixed, comp], [grad_batch[:n], grad_batch[n:]])


def _floor_step(real, fake, grad_batch, out, grad_real, grad_fake):
    n = real.shape[0]
    with torch.no_grad():
        out[:n].copy_(real)
        out[n:].copy_(fake)
        grad_real.copy_(grad_batch[:n])
        grad_fake.copy_(grad_batch[n:])


def _zero_grads(*tensors):
    for t in tensors:
        t.grad = None


def run(quick=False):
    rounds = 15 if quick else 41
    compiled_forward = torch.compile(_naive_forward)
    rows, records = [], []
    for shape in SHAPES:
        real, fake, beta, grad_batch = _make_inputs(shape)
        out = torch.empty((2 * shape[0],) + tuple(shape[1:]))
        grad_real, grad_fake = torch.empty(shape), torch.empty(shape)

        def batchgan():
            _zero_grads(real, fake)
            _batchgan_step(real, fake, beta, grad_batch)

        def naive():
            _zero_grads(real, fake)
            _naive_step(_naive_forward, real, fake, beta, grad_batch)

        def compiled():
            _zero_grads(real, fake)
            _naive_step(compiled_forward, real, fake, beta, grad_batch)

        def floor():
            _floor_step(real, fake, grad_batch, out, grad_real, grad_fake)

        # Same results before timing anything.
        batchgan()
        ours = (real.grad.clone(), fake.grad.clone())
        naive()
        for a, b in zip(ours, (real.grad, fake.grad)):
            torch.testing.assert_close(a, b)

        t = time_interleaved(
            {"batchgan": batchgan, "naive": naive, "compiled": compiled, "floor": floor}, warmup=5, rounds=rounds
        )
        rows.append(
            [
                "B={}, {}x{}x{}".format(*shape),
                format_time(t["batchgan"]),
                format_time(t["naive"]),
                format_time(t["compiled"]),
                format_time(t["floor"]),
                "%.2fx" % (t["naive"] / t["batchgan"]),
                "%.2fx" % (t["compiled"] / t["batchgan"]),
                "%.2fx" % (t["batchgan"] / t["floor"]),
            ]
        )
        records.append({"shape": list(shape), "num_sets": NUM_SETS, "seconds": t})
    print_table(
        f"mix (complement=True), forward + backward, median of {rounds} rounds",
        ["shape", "batchgan", "naive", "compiled", "floor", "naive/ours", "compiled/ours", "ours/floor"],
        rows,
    )
    print("targets: naive/ours >= 2.00x, ours/floor <= 1.30x")
    write_json("mix", {"benchmark": "mix_complement_forward_backward", "results": records})
    return records


if __name__ == "__main__":
    quick_main(__doc__, run)
