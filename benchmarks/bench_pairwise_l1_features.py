"""Minibatch discrimination features (issue 5): fused pairwise_l1_features vs the naive
broadcast version (the gist / torchgan layout, an N x N x B x C tensor) in eager mode and under
torch.compile, forward + backward, with CPU peak memory.

    python benchmarks/bench_pairwise_l1_features.py [--quick] [--sizes 256] [--shapes 100x5,64x16] [--threads 2]

Timings are interleaved medians (benchmarks/common.py); ratios are measured side by side in
one run. A baseline is skipped, and marked so in the table, where its N x N x B x C tensor
alone would exceed NAIVE_LIMIT_BYTES (it cannot fit with autograd, or takes many seconds).

The floor next to each row is the compute bound of the op's irreducible work: one exp per
pair and kernel, N (N - 1) / 2 * B of them (c_b is symmetric, so each unordered pair once),
timed as ATen's vectorised torch.exp on an L2-sized buffer (out=, no allocation; one thread at
that size) called that many times over the thread count, in the same rounds as the others.
Forward + backward needs at least that much (the fused op computes each exp twice, once per
direction, plus the O(C) distance and gradient work per pair).
"""

import argparse
import multiprocessing
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import batchgan_ext as bg
from batchgan_ext._reference.minibatch import pairwise_l1_features_reference

from common import (
    format_bytes,
    format_time,
    peak_memory_bytes,
    print_table,
    time_interleaved,
    write_json,
)

# One N x N x B x C float32 tensor above this is not run (autograd keeps several of them).
NAIVE_LIMIT_BYTES = 512 * 1024 * 1024
SIZES = [64, 256, 1024, 4096]
KERNEL_SHAPES = [(100, 5), (64, 16)]


def _fwd_bwd(fn, M, w):
    def run():
        M.grad = None
        (fn(M) * w).sum().backward()

    return run


def _peak_bytes(candidate, n, b, c):
    """Peak resident memory of one forward+backward, measured in a fresh process (called
    through a spawn pool): in the timing process the heap already holds the freed memory of
    earlier runs, which a later allocation reuses without raising the high-water mark."""
    torch.manual_seed(0)
    M = (0.3 * torch.randn(n, b, c)).requires_grad_()
    w = torch.randn(n, b)
    fn = {"fused": bg.pairwise_l1_features, "naive": pairwise_l1_features_reference}[candidate]
    run = _fwd_bwd(fn, M, w)
    run()  # one-time allocations (thread pools, first-call state) are not the op's
    M.grad = None  # the previous gradient would otherwise be freed inside the measurement
    return peak_memory_bytes(run)


# Elements per timed exp call of the floor: fits in L2 with its output, so the floor is the
# exp's compute cost, not memory bandwidth; below ATen's grain size (32768), so each call runs
# inline on one thread (a parallel region per call would time the threads' wake-ups instead).
FLOOR_CHUNK = 1 << 14


def _exp_floor(n, b):
    """A candidate doing N (N - 1) / 2 * B / threads exps as torch.exp calls on an L2-resident
    buffer (each call runs on one thread at this size): the pair terms' exps spread ideally
    over torch's threads. Timed in the same rounds as the others, so that its ratio holds."""
    x = -torch.rand(FLOOR_CHUNK) * 4
    out = torch.empty_like(x)
    calls = max(1, round(n * (n - 1) // 2 * b / FLOOR_CHUNK / torch.get_num_threads()))

    def run():
        for _ in range(calls):
            torch.exp(x, out=out)

    return run


def _rounds(n):
    # Large N: few repeats so that the whole run stays within minutes on 2 shared cores.
    return {64: 9, 256: 7, 1024: 3}.get(n, 1)


def bench(sizes, kernel_shapes, with_compile=True):
    rows, records, measured = [], [], []
    compiled_ref = torch.compile(pairwise_l1_features_reference) if with_compile else None
    for b, c in kernel_shapes:
        for n in sizes:
            torch.manual_seed(0)
            M = (0.3 * torch.randn(n, b, c)).requires_grad_()
            w = torch.randn(n, b)
            naive_bytes = 4 * n * n * b * c
            run_naive = naive_bytes <= NAIVE_LIMIT_BYTES
            fns = {"fused": _fwd_bwd(bg.pairwise_l1_features, M, w), "floor": _exp_floor(n, b)}
            if run_naive:
                fns["naive"] = _fwd_bwd(pairwise_l1_features_reference, M, w)
                if compiled_ref is not None:
                    fns["compiled"] = _fwd_bwd(compiled_ref, M, w)
            t0 = time.perf_counter()
            if "compiled" in fns:
                fns["compiled"]()  # compile outside the timed rounds
            compile_s = time.perf_counter() - t0
            times = time_interleaved(fns, warmup=1 if n <= 1024 else 0, rounds=_rounds(n))
            measured.append((n, b, c, M, fns, run_naive, naive_bytes, times, compile_s))
            print(f"  timed N={n} B={b} C={c}", flush=True)
    # Peak memory, each candidate in a fresh process (see _peak_bytes).
    pool = multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1)
    for n, b, c, _M, fns, run_naive, naive_bytes, times, compile_s in measured:
        mem = {}
        for name in ("fused", "naive") if run_naive else ("fused",):
            mem[name] = pool.apply(_peak_bytes, (name, n, b, c))
        skip = f"skipped: N*N*B*C tensor {format_bytes(naive_bytes)}" if not run_naive else None
        fused = times["fused"]
        floor = times["floor"]
        ratio = lambda k: f"{times[k] / fused:.1f}x" if k in times else "-"  # noqa: E731
        rows.append(
            [
                f"{n}",
                f"({b},{c})",
                format_time(fused),
                format_time(times.get("naive")) if run_naive else skip,
                format_time(times.get("compiled")) if "compiled" in times else (skip or "-"),
                ratio("naive"),
                ratio("compiled"),
                format_time(floor),
                f"{fused / floor:.1f}x",
                format_bytes(mem["fused"]),
                format_bytes(mem.get("naive")) if run_naive else "-",
            ]
        )
        records.append(
            {
                "N": n,
                "B": b,
                "C": c,
                "fused_s": fused,
                "naive_s": times.get("naive"),
                "compiled_s": times.get("compiled"),
                "compile_time_s": compile_s if "compiled" in fns else None,
                "floor_exp_s": floor,
                "fused_peak_bytes": mem["fused"],
                "naive_peak_bytes": mem.get("naive"),
                "naive_skipped": skip,
                "rounds": _rounds(n),
            }
        )
    pool.close()
    pool.join()
    return rows, records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N in {64, 256} at (B, C) = (100, 5) only")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    parser.add_argument("--sizes", help="comma-separated N (default: all of SIZES, or --quick's)")
    parser.add_argument("--shapes", help="comma-separated BxC kernel shapes, e.g. 100x5,64x16")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(v) for v in args.sizes.split(",")] if args.sizes else None
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes else None
    return run(quick=args.quick, with_compile=not args.no_compile, sizes=sizes, shapes=shapes)


def run(quick=False, with_compile=True, sizes=None, shapes=None):
    sizes = sizes or ([64, 256] if quick else SIZES)
    shapes = shapes or (KERNEL_SHAPES[:1] if quick else KERNEL_SHAPES)
    rows, records = bench(sizes, shapes, with_compile=with_compile)
    columns = [
        "N",
        "(B,C)",
        "fused f+b",
        "naive eager f+b",
        "naive compiled f+b",
        "eager/fused",
        "compiled/fused",
        "floor (exps)",
        "fused/floor",
        "fused peak RSS",
        "naive peak RSS",
    ]
    print_table(
        f"pairwise_l1_features forward+backward, CPU, {torch.get_num_threads()} threads (interleaved medians)",
        columns,
        rows,
    )
    write_json("pairwise_l1_features", {"results": records, "naive_limit_bytes": NAIVE_LIMIT_BYTES})
    return records


if __name__ == "__main__":
    main()
