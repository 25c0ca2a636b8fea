"""Shared benchmark utilities: median timings measured side by side, peak memory of torch's
CPU allocations, and a table printer / JSON writer. Timings on a shared machine are noisy:
compare ratios measured in one run, report medians."""

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


_ALLOCATOR_MODE = None


def steady_state_allocator() -> str:
    """Times are taken with glibc malloc reusing freed memory, as a training loop with a caching
    allocator does (jemalloc/tcmalloc, which PyTorch's CPU performance guide recommends, or the
    settings below). With glibc's defaults a tensor above the dynamic mmap threshold (128 KiB to
    32 MiB, moved by earlier frees) gets fresh pages from the kernel on every allocation, and
    on this VM the page faults cost as much as the kernel that fills them (a 512 x 512 weight
    gradient: 40 us to compute, ~450 us with fresh pages), so the timings would rank candidates
    by allocation history. Set BATCHGAN_BENCH_GLIBC_DEFAULT=1 to time with the defaults."""
    global _ALLOCATOR_MODE
    if _ALLOCATOR_MODE is not None:
        return _ALLOCATOR_MODE
    if os.environ.get("BATCHGAN_BENCH_GLIBC_DEFAULT") == "1":
        _ALLOCATOR_MODE = "glibc default"
        return _ALLOCATOR_MODE
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # glibc's maximum
    ok &= libc.mallopt(m_trim_threshold, 2**31 - 1)  # never hand the heap's top back
    ok &= libc.mallopt(m_top_pad, 64 * 1024 * 1024)
    _ALLOCATOR_MODE = "glibc, heap reused (mmap threshold 32 MiB, no trim)" if ok else "glibc default (mallopt failed)"
    return _ALLOCATOR_MODE


def time_median(fn: Callable[[], object], *, warmup: int = 3, repeat: int = 15, min_seconds: float = 0.0) -> float:
    """Median wall time of fn() in seconds, after `warmup` calls."""
    steady_state_allocator()
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start_all) < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * repeat:
            break
    return statistics.median(times)


def wall_clock(fn: Callable[[], object]) -> float:
    """Seconds of one fn() call on the host's clock (CPU work)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cuda_event_clock(fn: Callable[[], object]) -> float:
    """Seconds of the GPU work one fn() call queues, between two CUDA events on the current
    stream: the host's clock would time only the launches, which return before the kernels end."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    warmup: int = 3,
    rounds: int = 15,
    samples_out: dict[str, list[float]] | None = None,
    clock: Callable[[Callable[[], object]], float] = wall_clock,
) -> dict[str, float]:
    """Median times of several candidates measured round-robin, so that machine noise hits all
    of them alike and their ratios stay meaningful. `samples_out`, if given, receives every
    round's time of every candidate (for paired, per-round comparisons). `clock` times one call
    (wall_clock, or cuda_event_clock for candidates that run on a GPU)."""
    steady_state_allocator()
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        # The order rotates every round, so that no candidate always runs right after the same
        # one (a large candidate leaves cold caches and busy threads behind it).
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(clock(fns[name]))
    if samples_out is not None:
        samples_out.update(samples)
    return {name: statistics.median(ts) for name, ts in samples.items()}


def paired_ratio(samples: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of a's time / b's time in the same round: the ratio of two close
    candidates with the slow drift of a shared machine cancelled within each round."""
    return statistics.median(ta / tb for ta, tb in zip(samples[a], samples[b]))


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


_MMAP_THRESHOLD_SET = False


def _fixed_mmap_threshold() -> None:
    """glibc serves blocks above a dynamic threshold (growing to 32 MB after large frees) from
    the heap, where freed memory stays resident and a later allocation does not raise the
    high-water mark. A fixed 64 KiB threshold maps every sizeable tensor on allocation and
    unmaps it on free, so the high-water mark tracks live tensor bytes."""
    global _MMAP_THRESHOLD_SET
    if _MMAP_THRESHOLD_SET:
        return
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 * 1024)
    libc.mallopt(m_trim_threshold, 64 * 1024)
    libc.malloc_trim(0)
    _MMAP_THRESHOLD_SET = True


def peak_memory_bytes(fn: Callable[[], object]) -> int:
    """Peak resident memory while fn() ran, above the resident memory before it (Linux: the
    high-water mark VmHWM, reset through /proc/self/clear_refs). The profiler's "[memory]"
    events are not used: under torch 2.14 allocations made inside operators are attributed to
    the operator events and the sum of "[memory]" events stays 0."""
    _fixed_mmap_threshold()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _proc_status_bytes("VmRSS:")
    fn()
    return _proc_status_bytes("VmHWM:") - base


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def format_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(c), *(len(str(r[i])) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    print(f"\n## {title}")
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))


def machine_info() -> dict:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "allocator": _ALLOCATOR_MODE or "glibc default",
    }


def write_json(name: str, payload: dict) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"machine": machine_info(), **payload}, f, indent=2)
    print(f"\nwrote {path}")
    return path


def quick_main(doc: str, run: Callable[..., object], quick_help: str = "fewer rounds") -> None:
    """The command line of a benchmark whose only option is --quick: parses it and calls run()."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    run(quick=parser.parse_args().quick)
