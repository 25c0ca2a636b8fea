"""Benchmark of `bernoulli_kl_loss` (BGAN paper, eq. 3-4, 13, 14): forward + backward of the
discriminator loss on the logits of a mixed batch and its complement, both reductions.

Candidates, measured round-robin in one run (medians):
  batchgan   torch.ops.batchgan.bernoulli_kl_loss (one fused pass per direction)
  naive      the KL written out with sigmoid/log in PyTorch (batchgan_ext._reference.mixing)
  compiled   torch.compile of `naive`
  floor      the plain per-sample GAN loss of the same logits,
             F.binary_cross_entropy_with_logits (what a standard discriminator pays)

    python benchmarks/bench_bernoulli_kl_loss.py [--quick]
"""

import sys

import torch
import torch.nn.functional as F

import batchgan_ext as bg
from batchgan_ext._reference.mixing import bernoulli_kl_loss_reference

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import format_time, print_table, quick_main, time_interleaved, write_json

# (logits, sets): a CIFAR-size step (64 real + 64 fake mixed, 8 sets of 16) and a 2D-experiment
# step (batch 128 with its complement, sets of 32), then a large batch.
CASES = [(128, 8), (256, 8), (4096, 128)]
MODES = ("bgan", "mbgan")


def run(quick=False):
    rounds = 15 if quick else 41
    compiled_reference = torch.compile(bernoulli_kl_loss_reference)
    rows, records = [], []
    for n, num_sets in CASES:
        gen = torch.Generator().manual_seed(0)
        logits = torch.randn(n, generator=gen).requires_grad_(True)
        target = torch.rand(num_sets, generator=gen)
        labels = target.repeat_interleave(n // num_sets)
        for mode in MODES:

            def batchgan():
                logits.grad = None
                bg.bernoulli_kl_loss(logits, target, mode, num_sets).backward()

            def naive():
                logits.grad = None
                bernoulli_kl_loss_reference(logits, target, mode, num_sets).backward()

            def compiled():
                logits.grad = None
                compiled_reference(logits, target, mode, num_sets).backward()

            def floor():
                logits.grad = None
                F.binary_cross_entropy_with_logits(logits, labels).backward()

            batchgan()
            ours = logits.grad.clone()
            naive()
            torch.testing.assert_close(ours, logits.grad)

            t = time_interleaved(
                {"batchgan": batchgan, "naive": naive, "compiled": compiled, "floor": floor}, warmup=5, rounds=rounds
            )
            rows.append(
                [
                    f"N={n}, {num_sets} sets",
                    mode,
                    format_time(t["batchgan"]),
                    format_time(t["naive"]),
                    format_time(t["compiled"]),
                    format_time(t["floor"]),
                    "%.2fx" % (t["naive"] / t["batchgan"]),
                    "%.2fx" % (t["compiled"] / t["batchgan"]),
                    "%.2fx" % (t["batchgan"] / t["floor"]),
                ]
            )
            records.append({"logits": n, "num_sets": num_sets, "mode": mode, "seconds": t})
    print_table(
        f"bernoulli_kl_loss, forward + backward, median of {rounds} rounds",
        ["logits", "mode", "batchgan", "naive", "compiled", "floor (BCE)", "naive/ours", "compiled/ours", "ours/floor"],
        rows,
    )
    write_json("bernoulli_kl_loss", {"benchmark": "bernoulli_kl_loss_forward_backward", "results": records})
    return records


if __name__ == "__main__":
    quick_main(__doc__, run)
