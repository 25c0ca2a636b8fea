"""Runs every kernel benchmark (benchmarks/bench_*.py), each printing its table and writing
benchmarks/results/<name>.json.

    python benchmarks/run_all.py [--quick] [--only mixing,equivariant]
"""

import argparse
import glob
import importlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shapes")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    args = parser.parse_args(argv)
    names = sorted(os.path.basename(p)[len("bench_") : -len(".py")] for p in glob.glob(os.path.join(HERE, "bench_*.py")))
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(names)
        if unknown:
            parser.error(f"unknown benchmark(s) {sorted(unknown)}; have {names}")
        names = [n for n in names if n in wanted]
    for name in names:
        start = time.perf_counter()
        print(f"\n==================== benchmark: {name} ====================", flush=True)
        importlib.import_module(f"bench_{name}").run(quick=args.quick)
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
