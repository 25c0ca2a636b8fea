"""Forward+backward cost of the permutation-equivariant layers (BGAN paper, eq. 12) against a
plain layer of the same shape, on the SN-GAN CIFAR-10 discriminator's conv layers (Miyato et
al., 2018; batch 64) and the 2D experiment's 512-unit linear layers (batch 64 and 256).

Candidates, each timed as forward + backward (gradients of x, weights and bias), interleaved:
  plain     conv2d/linear + bias + leaky_relu(0.1)          the floor: no set term at all
  fused     batchgan_ext.equivariant_conv2d/_linear            this package
  naive     mean per set, Gamma product on G samples, broadcast add, leaky_relu (separate ops)
  compiled  torch.compile of naive (inductor)
Times are medians over the rounds; ratios are medians of the per-round ratios (candidate /
plain, fused / naive, timed in the same round), which cancels the slow drift of a shared
machine: fused and naive differ by only a few percent on the conv shapes.

A second table times a discriminator's first layer (conv1, 3 -> 64 channels on 64x3x32x32) on
one thread with an input that needs no gradient, the case where the plain layer's backward is
only its weight gradient and a fused layer's fixed passes weigh most (issue 14's worst case):
forward + backward and forward alone, fused against plain, with --num-sets sets and with 4 and
16 sets (set sizes 16 and 4 at batch 64).

    python benchmarks/bench_equivariant.py [--quick] [--num-sets G] [--no-compile]
"""

import argparse
import math
import os
import sys
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import batchgan_ext as bg
from batchgan_ext._reference.equivariant import equivariant_conv2d_naive, equivariant_linear_naive

from common import format_time, paired_ratio, print_table, time_interleaved, write_json

SLOPE = 0.1  # SN-GAN discriminators use leaky_relu(0.1)

# (name, C_in, C_out, kernel, stride, input size): the SN-GAN CIFAR-10 "standard CNN" discriminator.
CONV_LAYERS = [
    ("conv1 3x3", 3, 64, 3, 1, 32),
    ("conv2 4x4 s2", 64, 64, 4, 2, 32),
    ("conv3 3x3", 64, 128, 3, 1, 16),
    ("conv4 4x4 s2", 128, 128, 4, 2, 16),
    ("conv5 3x3", 128, 256, 3, 1, 8),
    ("conv6 4x4 s2", 256, 256, 4, 2, 8),
    ("conv7 3x3", 256, 512, 3, 1, 4),
]
# (name, in, out, batch): the 2D mixture-of-Gaussians experiment's 3 layers of 512 units.
LINEAR_LAYERS = [
    ("linear 2->512", 2, 512, 64),
    ("linear 512->512", 512, 512, 64),
    ("linear 2->512", 2, 512, 256),
    ("linear 512->512", 512, 512, 256),
]


def _fwd_bwd(forward, inputs, grad):
    def run():
        out = forward(*inputs)
        torch.autograd.grad(out, inputs, grad)

    return run


def _candidates(kind, x, w, wg, b, num_sets, conv_kw, compile_naive):
    if kind == "conv":
        plain = lambda x, w, wg, b: F.leaky_relu(F.conv2d(x, w, b, **conv_kw), SLOPE)  # noqa: E731
        fused = lambda x, w, wg, b: bg.equivariant_conv2d(  # noqa: E731
            x, w, wg, b, num_sets=num_sets, activation="leaky_relu", negative_slope=SLOPE, **conv_kw
        )
        naive = lambda x, w, wg, b: equivariant_conv2d_naive(  # noqa: E731
            x, w, wg, b, num_sets=num_sets, activation="leaky_relu", negative_slope=SLOPE, **conv_kw
        )
    else:
        plain = lambda x, w, wg, b: F.leaky_relu(F.linear(x, w, b), SLOPE)  # noqa: E731
        fused = lambda x, w, wg, b: bg.equivariant_linear(x, w, wg, b, num_sets, "leaky_relu", SLOPE)  # noqa: E731
        naive = lambda x, w, wg, b: equivariant_linear_naive(  # noqa: E731
            x, w, wg, b, num_sets=num_sets, activation="leaky_relu", negative_slope=SLOPE
        )
    grad = torch.randn_like(plain(x, w, wg, b))
    fns = {
        "plain": _fwd_bwd(lambda x, w, wg, b: plain(x, w, wg, b), (x, w, b), grad),
        "fused": _fwd_bwd(lambda x, w, wg, b: fused(x, w, wg, b), (x, w, wg, b), grad),
        "naive": _fwd_bwd(lambda x, w, wg, b: naive(x, w, wg, b), (x, w, wg, b), grad),
    }
    # plain has no Gamma: its closure takes (x, w, b) and ignores wg.
    fns["plain"] = _fwd_bwd(lambda x, w, b: plain(x, w, None, b), (x, w, b), grad)
    if compile_naive:
        compiled = torch.compile(naive, fullgraph=True, dynamic=False)
        fns["compiled"] = _fwd_bwd(compiled, (x, w, wg, b), grad)
    return fns


def _forward_only(fn):
    def run():
        with torch.no_grad():
            fn()

    return run


def first_layer(rounds, warmup, num_sets_list):
    """conv1 (3 -> 64, 64x3x32x32), x without gradient, one thread: fused / plain, fwd+bwd and fwd."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        name, cin, cout, k, s, size = CONV_LAYERS[0]
        x = torch.randn(64, cin, size, size)
        scale = 1 / math.sqrt(cin * k * k)
        w = (torch.randn(cout, cin, k, k) * scale).requires_grad_(True)
        wg = (torch.randn(cout, cin, k, k) * scale).requires_grad_(True)
        b = torch.zeros(cout).requires_grad_(True)
        grad = torch.randn(64, cout, size, size)
        conv_kw = dict(stride=s, padding=1)

        def plain():
            return F.leaky_relu(F.conv2d(x, w, b, **conv_kw), SLOPE)

        rows, records = [], []
        for num_sets in num_sets_list:

            def fused(num_sets=num_sets):
                return bg.equivariant_conv2d(
                    x, w, wg, b, num_sets=num_sets, activation="leaky_relu", negative_slope=SLOPE, **conv_kw
                )

            fns = {
                # The weights need gradients, x does not.
                "plain": lambda: torch.autograd.grad(plain(), (w, b), grad),
                "fused": lambda: torch.autograd.grad(fused(), (w, wg, b), grad),
                "plain fwd": _forward_only(plain),
                "fused fwd": _forward_only(fused),
            }
            samples = {}
            times = time_interleaved(fns, warmup=warmup, rounds=rounds, samples_out=samples)
            both = paired_ratio(samples, "fused", "plain")
            fwd = paired_ratio(samples, "fused fwd", "plain fwd")
            rows.append(
                [f"{name}, sets of {64 // num_sets}", format_time(times["plain"]), format_time(times["fused"])]
                + [f"{both:.2f}x", format_time(times["plain fwd"]), format_time(times["fused fwd"]), f"{fwd:.2f}x"]
            )
            records.append(
                {"num_sets": num_sets, "seconds": times, "fused_over_plain": both, "forward_fused_over_plain": fwd}
            )
        print_table(
            f"first layer 64x{cin}x{size}x{size} -> {cout}, x without gradient, 1 thread, medians of {rounds} rounds",
            ["layer", "plain", "fused", "fused/plain", "plain fwd", "fused fwd", "fwd fused/plain"],
            rows,
        )
        return records
    finally:
        torch.set_num_threads(threads)


def _geomean(values):
    values = [v for v in values if v is not None]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--num-sets", type=int, default=1, help="number of sets in the batch (default 1)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile candidate")
    args = parser.parse_args(argv)
    return run(quick=args.quick, num_sets=args.num_sets, compile_naive=not args.no_compile)


def run(quick=False, num_sets=1, compile_naive=True):
    rounds, warmup = (5, 2) if quick else (31, 3)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)

    shapes = []
    for name, cin, cout, k, s, size in CONV_LAYERS:
        x = torch.randn(64, cin, size, size, requires_grad=True)
        scale = 1 / math.sqrt(cin * k * k)
        w = (torch.randn(cout, cin, k, k) * scale).requires_grad_(True)
        wg = (torch.randn(cout, cin, k, k) * scale).requires_grad_(True)
        b = torch.zeros(cout).requires_grad_(True)
        shapes.append((name, f"64x{cin}x{size}x{size} -> {cout}", "conv", (x, w, wg, b), dict(stride=s, padding=1)))
    for name, fin, fout, batch in LINEAR_LAYERS:
        x = torch.randn(batch, fin, requires_grad=True)
        w = (torch.randn(fout, fin) / math.sqrt(fin)).requires_grad_(True)
        wg = (torch.randn(fout, fin) / math.sqrt(fin)).requires_grad_(True)
        b = torch.zeros(fout).requires_grad_(True)
        shapes.append((name, f"{batch}x{fin} -> {fout}", "linear", (x, w, wg, b), {}))

    names = ["plain", "fused", "naive"] + (["compiled"] if compile_naive else [])
    rows, records = [], []
    ratios = {n: [] for n in names if n != "plain"}
    for name, shape, kind, tensors, conv_kw in shapes:
        fns = _candidates(kind, *tensors, num_sets, conv_kw, compile_naive)
        samples = {}
        times = time_interleaved(fns, warmup=warmup, rounds=rounds, samples_out=samples)
        # Ratios are medians of per-round ratios (each candidate against the plain layer timed
        # in the same round), which cancels the shared machine's slow drift.
        rel = {n: paired_ratio(samples, n, "plain") for n in names if n != "plain"}
        for n, r in rel.items():
            ratios[n].append(r)
        # fused vs naive: the median of the per-round ratios (the two are within a few percent
        # on the conv shapes, where the ratio of medians flips with the machine's noise).
        fused_vs_naive = paired_ratio(samples, "fused", "naive")
        rows.append(
            [name, shape]
            + [format_time(times[n]) for n in names]
            + [f"{rel[n]:.2f}x" for n in rel]
            + [f"{fused_vs_naive:.3f}"]
        )
        records.append(
            {
                "layer": name,
                "shape": shape,
                "seconds": times,
                "vs_plain": rel,
                "fused_over_naive_paired": fused_vs_naive,
            }
        )
    geo = {n: _geomean(r) for n, r in ratios.items()}
    rows.append(["geomean", ""] + [""] * len(names) + [f"{geo[n]:.2f}x" for n in geo] + [""])
    columns = ["layer", "shape"] + names + [f"{n}/plain" for n in names if n != "plain"] + ["fused/naive (paired)"]
    print_table(
        f"equivariant layers, forward+backward, medians of {rounds} interleaved rounds (ratios: medians of "
        f"per-round ratios), "
        f"{torch.get_num_threads()} threads, num_sets={num_sets}",
        columns,
        rows,
    )
    first = first_layer(rounds, warmup, sorted({num_sets, 4, 16}))
    write_json(
        "equivariant",
        {"num_sets": num_sets, "rounds": rounds, "layers": records, "geomean_vs_plain": geo, "first_layer": first},
    )
    return geo


if __name__ == "__main__":
    main()
