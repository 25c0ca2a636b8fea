"""Data-parallel discriminator step on 1 and 2 processes (torch.distributed, gloo on CPU): the two layouts
of batchgan_ext.distributed.

The model is the end-to-end benchmark's discriminator (SN-GAN's standard CNN, width 16 here, made
equivariant over sets of 16 with per-sample logits) on a global batch of 128 images of 3x32x32; each of
W processes holds 128 / W of them. One step = forward, backward of a per-sample loss, gradient average.

  local     layout (a): every rank holds whole sets; DistributedDataParallel all-reduces the gradients
            (with W = 1: the single-process step, no communication)
  spanning  layout (b): convert_spanning_sets (with rank_sizes, so the sizes are not gathered); every
            equivariant layer all-reduces its per-set sums in the forward and their gradients in the
            backward, on top of DDP's gradient all-reduce; its layers are ATen's products plus the
            synced mean, not the fused kernels

Communication per step (float32 bytes), P parameters, G global sets, F_l the input size (features or
channels x positions) of the l-th equivariant layer:
  local     4 P (one all-reduce of the gradients, in buckets)
  spanning  4 P + sum_l 2 * 4 G F_l (the set sums and their gradients)
The table prints both from the model's shapes next to the median step time; each process runs one
thread (2 cores). Ratios are against the single-process step measured in the same run; the spanning
layout on 1 process isolates its compute (ATen's layers instead of the fused kernels) from its
communication.

    python benchmarks/bench_distributed.py [--quick]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SET_SIZE, GLOBAL_BATCH, WIDTH = 16, 128, 16


def _model(layout: str, world: int = 1):
    import torch

    from batchgan_ext import make_equivariant
    from batchgan_ext.distributed import convert_spanning_sets
    from batchgan_ext.train.image_networks import make_image_discriminator

    torch.manual_seed(0)
    D = make_equivariant(make_image_discriminator(3, WIDTH), SET_SIZE, reduce=None)
    if layout == "spanning":
        convert_spanning_sets(D, rank_sizes=[GLOBAL_BATCH // world] * world)  # no size gather per layer
    return D


def communication_bytes(layout: str) -> int:
    """The formula of the module docstring, from the model's shapes."""
    import torch

    from batchgan_ext import EquivariantConv2d, EquivariantLinear

    D = _model("local")
    params = sum(p.numel() for p in D.parameters())
    sets = GLOBAL_BATCH // SET_SIZE
    inputs: list[int] = []
    hooks = [
        m.register_forward_pre_hook(lambda m, args: inputs.append(args[0][0].numel()))
        for m in D.modules()
        if isinstance(m, (EquivariantConv2d, EquivariantLinear))
    ]
    with torch.no_grad():
        D(torch.zeros(SET_SIZE, 3, 32, 32))
    for h in hooks:
        h.remove()
    return 4 * params + (sum(2 * 4 * sets * f for f in inputs) if layout == "spanning" else 0)


def worker(layout: str, rounds: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    D = torch.nn.parallel.DistributedDataParallel(_model(layout, world))
    n = GLOBAL_BATCH // world
    x = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(1))[rank * n : (rank + 1) * n]

    def step():
        D.zero_grad(set_to_none=True)
        D(x).square().mean().backward()

    times = []
    for i in range(rounds + 2):  # 2 warm-up steps
        dist.barrier()
        start = time.perf_counter()
        step()
        elapsed = torch.tensor([time.perf_counter() - start], dtype=torch.float64)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # a step ends when its slowest rank does
        if i >= 2:
            times.append(float(elapsed))
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"median": statistics.median(times), "times": times}, f)
    # Every rank reaches here before any tears gloo down: a rank that exits while its peer is still
    # returning from the last collective can make the peer abort ("terminate called without an
    # active exception", seen once in the main job on a loaded machine).
    dist.barrier()
    dist.destroy_process_group()


def run(layout: str, world: int, rounds: int) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        procs = []
        for rank in range(world):
            env = dict(
                os.environ,
                RANK=str(rank),
                WORLD_SIZE=str(world),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
                OMP_NUM_THREADS="1",
            )
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", layout, "--rounds", str(rounds), "--out", out]
            procs.append(subprocess.Popen(cmd, env=env))
        codes = [p.wait(timeout=1800) for p in procs]
        if any(codes):
            raise RuntimeError(f"{layout} on {world} processes failed (exit codes {codes})")
        with open(out) as f:
            return json.load(f)["median"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--worker", choices=["local", "spanning"], help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.rounds, args.out)
        return
    sys.path.insert(0, HERE)
    from common import format_time, print_table, write_json

    rounds = 5 if args.quick else 20
    results = []
    for world in (1, 2):
        for layout in ("local", "spanning"):
            results.append(
                dict(world=world, layout=layout, median=run(layout, world, rounds), bytes=communication_bytes(layout))
            )
    base = results[0]["median"]
    rows = [
        [
            str(r["world"]),
            r["layout"],
            format_time(r["median"]),
            f"{base / r['median']:.2f}x",
            f"{r['bytes'] / 1e6:.2f} MB" if r["world"] > 1 else "0",
        ]
        for r in results
    ]
    print_table(
        f"D step, global batch {GLOBAL_BATCH} of 3x32x32, sets of {SET_SIZE}, width {WIDTH} (gloo, 1 thread/process)",
        ["processes", "layout", "median step", "speed-up vs 1", "communication/step"],
        rows,
    )
    write_json("distributed", {"rounds": rounds, "results": results})


if __name__ == "__main__":
    main()
