#!/usr/bin/env python3
"""Register/spill gate of the CUDA kernels (issue 14): reads ptxas' resource report (`ptxas -v`,
which setup.py's nvcc flags turn on) from a build log, prints one row per kernel and dtype
(registers, spill stores/loads, stack frame, static shared memory, the block size it is launched
with, the occupancy estimate for sm_80 and sm_90), and exits 1 on any spill or stack frame, or
when a kernel of csrc/ops/*/cuda/*.cuh is missing from the report of an architecture built.

    python .ci/check_kernel_resources.py .venv/batchgan_build.log            # CI (.ci/run)
    python .ci/check_kernel_resources.py --markdown build/*.log               # README table
    python .ci/check_kernel_resources.py --no-expect a.log                    # any log, no coverage check

A log whose build has no CUDA backend (setup.py prints `backends: cpu`) is skipped with exit 0,
unless --require-cuda (or BATCHGAN_FORCE_CUDA=1) is given.

The occupancy estimate is the occupancy calculator's theoretical occupancy (resident warps per SM
/ max warps per SM) from the published per-SM limits, with each kernel's block size taken from
csrc/common/launch_config.h (KERNEL_LAUNCH below says which configuration launches which kernel).
"""

import argparse
import dataclasses
import glob
import math
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_CONFIG_H = os.path.join(ROOT, "csrc", "common", "launch_config.h")


@dataclasses.dataclass(frozen=True)
class SMLimits:
    """Per-SM limits of an architecture (CUDA C++ Programming Guide, compute capabilities table)."""

    registers: int = 65536
    reg_granularity: int = 256  # registers are allocated per warp in units of 256
    max_regs_per_thread: int = 255
    max_warps: int = 64
    max_blocks: int = 32
    shared_bytes: int = 164 * 1024
    shared_granularity: int = 128
    reserved_shared_per_block: int = 1024  # the runtime's per-block reservation
    sms: int = 108  # SMs of the reference GPU, for the grid-limited estimate


ARCHES = {
    "sm_80": SMLimits(shared_bytes=164 * 1024, sms=108),  # A100
    "sm_90": SMLimits(shared_bytes=228 * 1024, sms=132),  # H100 SXM
}

# The pairwise kernels' grid at the benchmark's N=256 (bench_pairwise_l1_features.py: B=100
# kernels, one set): (row tiles of kPairwiseTileRows) x B x sets blocks.
PAIRWISE_N, PAIRWISE_B, PAIRWISE_SETS = 256, 100, 1

# Kernel (unqualified name) -> the launch_config.h constant giving its threads per block.
KERNEL_LAUNCH = {
    "bernoulli_kl_forward_kernel": "kReductionThreads",  # block_per_item_launch_config
    "bernoulli_kl_backward_kernel": "kReductionThreads",
    "minibatch_stddev_forward_kernel": "kReductionThreads",
    "minibatch_stddev_backward_kernel": "kReductionThreads",
    "set_mean_kernel": "kElementwiseThreads",  # elementwise_launch_config
    "epilogue_forward_kernel": "kElementwiseThreads",
    "epilogue_backward_kernel": "kElementwiseThreads",
    "broadcast_add_kernel": "kElementwiseThreads",
    "mix_forward_kernel": "kElementwiseThreads",
    "mix_backward_kernel": "kElementwiseThreads",
    "pairwise_l1_forward_kernel": "kPairwiseTileRows",  # pairwise_tile_launch_config
    "pairwise_l1_backward_kernel": "kPairwiseTileRows",
}

DTYPES = {"float": "float32", "double": "float64", "c10::Half": "float16", "c10::BFloat16": "bfloat16"}


@dataclasses.dataclass
class Usage:
    mangled: str
    arch: str
    registers: int = 0
    stack: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    shared: int = 0
    entry: bool = True
    name: str = ""  # unqualified kernel name
    dtype: str = ""  # scalar_t of the instantiation, or its template arguments


_ENTRY = re.compile(r"ptxas info\s*:\s*Compiling entry function '([^']+)' for '(sm_\d+a?)'")
_FUNC = re.compile(r"ptxas info\s*:\s*Function properties for (\S+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"ptxas info\s*:\s*Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_ARCH_HINT = re.compile(r"for '(sm_\d+a?)'")


def parse_ptxas(lines):
    """Resource records of every function in ptxas -v output, in the order reported.

    ptxas prints, per entry function: `Compiling entry function 'X' for 'sm_NN'`, then
    `Function properties for X` followed by the stack/spill line, then `Used N registers, ...`.
    Device functions that were not inlined get a `Function properties` block of their own
    (no `Compiling entry` line); they are returned with entry=False, so their frames count too.
    """
    records = []
    current = None  # the entry being compiled (its Used line closes it)
    pending = None  # the Function properties block waiting for its frame line
    arch = None
    for raw in lines:
        line = raw.strip()
        m = _ENTRY.search(line)
        if m:
            arch = m.group(2)
            current = Usage(m.group(1), arch)
            records.append(current)
            pending = None
            continue
        m = _FUNC.search(line)
        if m:
            name = m.group(1)
            if current is not None and current.mangled == name:
                pending = current
            else:
                pending = Usage(name, arch or "?", entry=False)
                records.append(pending)
            continue
        m = _FRAME.search(line)
        if m and pending is not None:
            pending.stack, pending.spill_stores, pending.spill_loads = (int(g) for g in m.groups())
            pending = None
            continue
        m = _USED.search(line)
        if m and current is not None:
            current.registers = int(m.group(1))
            s = _SMEM.search(line)
            current.shared = int(s.group(1)) if s else 0
            current = None
    return records


def demangle(names):
    """Demangled names (c++filt when present; the mangled names otherwise)."""
    tool = shutil.which("c++filt")
    if not tool or not names:
        return list(names)
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True, check=False).stdout
    result = out.splitlines()
    return result if len(result) == len(names) else list(names)


def describe(record, demangled):
    """Fills in the unqualified kernel name and the dtype from a demangled signature such as
    `void batchgan::cuda::pairwise_l1_forward_kernel<float, float, 1>(float const*, ...)`."""
    head = demangled.split("(", 1)[0]
    if head.startswith("void "):
        head = head[5:]
    args = ""
    if "<" in head:
        head, args = head.split("<", 1)
        args = args.rsplit(">", 1)[0]
    record.name = head.split("::")[-1]
    first = args.split(",")[0].strip() if args else ""
    rest = ",".join(args.split(",")[2:]).strip() if args.count(",") >= 2 else ""
    record.dtype = DTYPES.get(first, args) + (f" <{rest}>" if rest and first in DTYPES else "")


def launch_constants(path=LAUNCH_CONFIG_H):
    """`constexpr int kName = value;` (or int64_t) of launch_config.h: block sizes, the pairwise tiling."""
    with open(path) as f:
        text = f.read()
    return {
        m.group(1): int(m.group(2)) for m in re.finditer(r"constexpr\s+int(?:64_t)?\s+(k\w+)\s*=\s*(\d+)\s*;", text)
    }


def block_threads(name, constants):
    key = KERNEL_LAUNCH.get(name)
    return constants.get(key) if key else None


def occupancy(registers, shared_bytes, threads, limits):
    """Theoretical occupancy (resident warps / max warps) and resident blocks per SM, as the CUDA
    occupancy calculator (cudaOccupancyMaxActiveBlocksPerMultiprocessor) computes them."""
    warps = math.ceil(threads / 32)
    by_warps = limits.max_warps // warps
    regs = max(registers, 1)
    if regs > limits.max_regs_per_thread:
        return 0.0, 0
    regs_per_warp = math.ceil(regs * 32 / limits.reg_granularity) * limits.reg_granularity
    by_regs = limits.registers // (regs_per_warp * warps)
    smem = shared_bytes + limits.reserved_shared_per_block
    smem = math.ceil(smem / limits.shared_granularity) * limits.shared_granularity
    by_smem = limits.shared_bytes // smem
    blocks = min(by_warps, by_regs, by_smem, limits.max_blocks)
    return blocks * warps / limits.max_warps, blocks


def grid_limited_occupancy(blocks, threads, per_sm_blocks, limits):
    """Occupancy a grid of `blocks` blocks can reach: its warps spread over the GPU's SMs, at most
    the theoretical per-SM residency (a grid too small to fill the GPU caps it)."""
    warps = math.ceil(threads / 32)
    per_sm = min(per_sm_blocks, math.ceil(blocks / limits.sms))
    return min(per_sm * warps, blocks * warps / limits.sms) / limits.max_warps


def pairwise_slices(constants, n, kernels, sets):
    """Slices of the j walk per row, as pairwise_tile_launch_config (launch_config.h) picks them."""
    row_tiles = math.ceil(n / constants["kPairwiseTileRows"])
    target, min_samples = constants.get("kPairwiseTargetBlocks"), constants.get("kPairwiseMinSliceSamples")
    if target is None or min_samples is None:  # no split
        return 1
    slices = max(1, min(math.ceil(target / (row_tiles * kernels * sets)), math.ceil(n / min_samples)))
    tile = constants["kPairwiseTileJ"]
    slice_len = math.ceil(math.ceil(n / slices) / tile) * tile
    return math.ceil(n / slice_len)


def pairwise_grid_blocks(constants, n=PAIRWISE_N, kernels=PAIRWISE_B, sets=PAIRWISE_SETS):
    """Blocks of pairwise_tile_launch_config for sets of n samples: (row tiles x slices, B, sets)."""
    return math.ceil(n / constants["kPairwiseTileRows"]) * pairwise_slices(constants, n, kernels, sets) * kernels * sets


def expected_kernels(root=ROOT):
    """Every `__global__` kernel defined in csrc/ops/*/cuda/*.cuh."""
    names = set()
    for path in glob.glob(os.path.join(root, "csrc", "ops", "*", "cuda", "*.cuh")):
        with open(path) as f:
            names.update(re.findall(r"__global__\s+void\s+(\w+)", f.read()))
    return names


def build_config(lines):
    """(has_cuda, arches) from setup.py's configuration lines in the log; None when absent."""
    has_cuda, arches = None, None
    for line in lines:
        m = re.search(r"\[batchgan_ext\]\s+backends:\s*(.*)", line)
        if m:
            has_cuda = "cuda" in m.group(1)
        m = re.search(r"\[batchgan_ext\]\s+arch_list:\s*(\S+)", line)
        if m and m.group(1) != "None":
            arches = {
                "sm_" + a.replace("+PTX", "").replace(".", "") for a in m.group(1).replace(" ", ";").split(";") if a
            }
    return has_cuda, arches


def merge(records):
    """One record per (function, arch): a log may hold the same compile twice; keep the worst."""
    best = {}
    for r in records:
        key = (r.mangled, r.arch)
        old = best.get(key)
        if old is None or (r.stack, r.spill_stores + r.spill_loads, r.registers) > (
            old.stack,
            old.spill_stores + old.spill_loads,
            old.registers,
        ):
            best[key] = r
    return list(best.values())


def table_rows(records, constants):
    """Rows (kernel, dtype, block, per-arch stats) sorted by kernel then dtype."""
    by_fn = {}
    for r in records:
        by_fn.setdefault((r.name, r.dtype, r.entry), {})[r.arch] = r
    rows = []
    for (name, dtype, entry), per_arch in sorted(by_fn.items()):
        threads = block_threads(name, constants) if entry else None
        row = {"kernel": name if entry else name + " (device function)", "dtype": dtype, "block": threads}
        for arch, limits in ARCHES.items():
            r = per_arch.get(arch)
            if r is None:
                row[arch] = None
                continue
            occ = occupancy(r.registers, r.shared, threads, limits) if threads else (None, None)
            row[arch] = {"regs": r.registers, "spill": (r.spill_stores, r.spill_loads), "stack": r.stack}
            row[arch].update(smem=r.shared, occupancy=occ[0], blocks=occ[1], grid=None)
            if threads and name.startswith("pairwise_l1_"):
                row[arch]["grid"] = grid_limited_occupancy(pairwise_grid_blocks(constants), threads, occ[1], limits)
        rows.append(row)
    return rows


def _per_arch(row, fmt):
    return [("-" if row[arch] is None else fmt(row[arch])) for arch in ARCHES]


def _fmt_occupancy(s):
    if s["occupancy"] is None:
        return "-"
    text = f"{100 * s['occupancy']:.1f}%"
    return text if s["grid"] is None else text + f" ({100 * s['grid']:.1f}% at N={PAIRWISE_N})"


def format_table(rows, markdown=False):
    """The table: one row per kernel and dtype; per-arch values as `sm_80 / sm_90`."""
    head = [
        "kernel",
        "dtype",
        "block",
        "registers",
        "spill stores/loads (B)",
        "stack (B)",
        "smem (B)",
        "occupancy sm_80",
        "occupancy sm_90",
    ]
    body = []
    for row in rows:
        smem = {s["smem"] for s in (row[a] for a in ARCHES) if s is not None}
        body.append(
            [
                row["kernel"],
                row["dtype"],
                str(row["block"] or "-"),
                " / ".join(_per_arch(row, lambda s: str(s["regs"]))),
                " / ".join(_per_arch(row, lambda s: "{}+{}".format(*s["spill"]))),
                " / ".join(_per_arch(row, lambda s: str(s["stack"]))),
                " / ".join(str(v) for v in sorted(smem)) or "-",
                *_per_arch(row, _fmt_occupancy),
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(r)) + " |" for r in body]
        return "\n".join(lines)
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in body]
    return "\n".join(lines)


def check(records, expected, arches, constants):
    """Failure messages: spills, stack frames, kernels missing per architecture, kernels with
    no known block size."""
    failures = []
    for r in records:
        what = f"{r.name}<{r.dtype}> ({r.arch})" if r.entry else f"device function {r.name} ({r.arch})"
        if r.spill_stores or r.spill_loads:
            failures.append(f"{what}: spills {r.spill_stores} bytes stores, {r.spill_loads} bytes loads")
        if r.stack:
            failures.append(f"{what}: {r.stack} bytes stack frame")
        if r.entry and block_threads(r.name, constants) is None:
            failures.append(f"{what}: no launch block size known (add it to KERNEL_LAUNCH in {__file__})")
    if expected:
        for arch in sorted(arches):
            seen = {r.name for r in records if r.arch == arch and r.entry}
            for name in sorted(expected - seen):
                failures.append(f"{name}: not in ptxas' report for {arch} (is -Xptxas=-v in setup.py's nvcc flags?)")
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", help="build logs (pip install -v output) or ptxas -v output")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--require-cuda", action="store_true", help="fail when the log has no CUDA build")
    parser.add_argument("--no-expect", action="store_true", help="do not require every kernel of csrc/ops")
    args = parser.parse_args(argv)
    require_cuda = args.require_cuda or os.environ.get("BATCHGAN_FORCE_CUDA", "").lower() in ("1", "true", "yes", "on")
    lines = []
    for path in args.logs:
        with open(path, errors="replace") as f:
            lines += f.read().splitlines()
    has_cuda, arches = build_config(lines)
    records = merge(parse_ptxas(lines))
    if has_cuda is False or (has_cuda is None and not records):
        msg = "[kernels] the build has no CUDA backend: no ptxas report to check"
        if require_cuda:
            print(msg + ", but a CUDA build is required (BATCHGAN_FORCE_CUDA / --require-cuda): FAILED")
            return 1
        print(msg + "; resource gate skipped")
        return 0
    if arches is None:
        arches = {r.arch for r in records} or set(ARCHES)
    for r, d in zip(records, demangle([r.mangled for r in records])):
        describe(r, d)
    constants = launch_constants()
    rows = table_rows(records, constants)
    print(format_table(rows, markdown=args.markdown))
    failures = check(records, set() if args.no_expect else expected_kernels(), arches, constants)
    if failures:
        print(f"[kernels] resource gate FAILED ({len(failures)}):")
        for f in failures:
            print("  " + f)
        return 1
    archs = ", ".join(sorted(arches))
    print(f"[kernels] resource gate passed: {len(records)} functions over {archs}, no spills or stack frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
