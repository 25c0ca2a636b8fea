"""minibatch_stddev (Karras et al., StyleGAN2-ADA's MinibatchStdLayer) forward + backward: the
fused op against the naive PyTorch formula (batchgan_ext._reference.minibatch) in eager mode and
under torch.compile, at the shapes where GAN discriminators use it (the last blocks).

    python benchmarks/bench_minibatch_stddev.py [--quick]
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import batchgan_ext as bg
from batchgan_ext._reference.minibatch import minibatch_stddev_reference

from common import format_time, print_table, quick_main, time_interleaved, write_json

# (N, C, H, W): StyleGAN2's 4x4 block at 512 channels, and an 8x8 block at 256.
SHAPES = [(64, 512, 4, 4), (64, 256, 8, 8), (256, 512, 4, 4)]


def _fwd_bwd(fn, x, w):
    def run():
        x.grad = None
        (fn(x, 4, 1) * w).sum().backward()

    return run


def run(quick=False):
    rounds = 9 if quick else 25
    compiled_ref = torch.compile(minibatch_stddev_reference)
    rows, records = [], []
    for shape in SHAPES[:2] if quick else SHAPES:
        torch.manual_seed(0)
        x = torch.randn(shape, requires_grad=True)
        w = torch.randn(shape[0], shape[1] + 1, *shape[2:])
        fns = {
            "fused": _fwd_bwd(bg.minibatch_stddev, x, w),
            "naive": _fwd_bwd(minibatch_stddev_reference, x, w),
            "compiled": _fwd_bwd(compiled_ref, x, w),
        }
        fns["compiled"]()  # compile outside the timed rounds
        t = time_interleaved(fns, warmup=3, rounds=rounds)
        rows.append(
            [
                "x".join(map(str, shape)),
                format_time(t["fused"]),
                format_time(t["naive"]),
                format_time(t["compiled"]),
                f"{t['naive'] / t['fused']:.2f}x",
                f"{t['compiled'] / t['fused']:.2f}x",
            ]
        )
        records.append({"shape": list(shape), "group_size": 4, "seconds": t})
    print_table(
        f"minibatch_stddev forward+backward, group_size=4, median of {rounds} interleaved rounds",
        ["x shape", "fused", "naive", "compiled", "naive/fused", "compiled/fused"],
        rows,
    )
    write_json("minibatch_stddev", {"results": records})
    return records


if __name__ == "__main__":
    quick_main(__doc__, run, "fewer rounds and shapes")
