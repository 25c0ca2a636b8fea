"""Runs every kernel benchmark (benchmarks/bench_*.py), each printing its table and writing
benchmarks/results/<name>.json.

    python benchmarks/run_all.py [--quick] [--only mix,equivariant]
"""

import argparse
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shapes")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    args = parser.parse_args(argv)
    names = sorted(
        os.path.basename(p)[len("bench_") : -len(".py")] for p in glob.glob(os.path.join(HERE, "bench_*.py"))
    )
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(names)
        if unknown:
            parser.error(f"unknown benchmark(s) {sorted(unknown)}; have {names}")
        names = [n for n in names if n in wanted]
    failed = []
    for name in names:
        start = time.perf_counter()
        print(f"\n==================== benchmark: {name} ====================", flush=True)
        # One process per benchmark: allocator settings (the peak-memory measurement fixes
        # glibc's mmap threshold), compile caches and thread pools do not leak between them.
        cmd = [sys.executable, os.path.join(HERE, f"bench_{name}.py")] + (["--quick"] if args.quick else [])
        if subprocess.call(cmd) != 0:
            failed.append(name)
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", flush=True)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
