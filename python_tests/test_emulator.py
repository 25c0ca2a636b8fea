"""Tests of the CPU emulator of the CUDA execution model itself: a correct kernel gives the
right answer on awkward sizes under every schedule, the schedule varies with its seed and
reproduces with it, a block's shared memory starts as NaN, planted races are exposed, every
barrier misuse is reported as an error, and a barrier can be switched off at run time."""

import pytest
import torch

import batchgan_ext._emulated as emu

from device_sources import CSRC, barrier_sites

SEEDS = [0, 1, 2, 3]


@pytest.fixture
def schedule_seed():
    """Sets the emulator's schedule seed for one test and restores the previous one."""
    previous = emu._schedule_seed()
    yield emu._set_schedule_seed
    emu._set_schedule_seed(previous)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("threads", [32, 64, 96, 256])
@pytest.mark.parametrize("n", [1, 31, 257, 1000])
def test_block_reduction_matches_sum(schedule_seed, seed, threads, n):
    # Two reductions in a row per block (sum, then sum of squares) over 5 blocks.
    schedule_seed(seed)
    values = torch.randn(5, n, dtype=torch.float64)
    sums = emu._selftest_block_sums(values, threads)
    expected = torch.stack([values.sum(dim=1), (values * values).sum(dim=1)], dim=1)
    torch.testing.assert_close(sums, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("threads", [32, 128, 1024])
def test_syncthreads_orders_shared_memory(schedule_seed, seed, threads):
    # Each thread reads its neighbour's shared-memory slot after the barrier: a thread passing
    # the barrier early would read a slot not yet written (NaN-filled: -1 as an int).
    schedule_seed(seed)
    values = torch.randint(0, 1 << 20, (3 * threads,), dtype=torch.int32)
    out = emu._selftest_shared_tile_rotate(values, threads)
    expected = values.view(3, threads).roll(-1, dims=1).reshape(-1)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("threads", [1, 33, 100])
def test_block_size_must_be_a_warp_multiple(threads):
    with pytest.raises(RuntimeError, match=f"a block of {threads} threads; block sizes must be multiples of the warp"):
        emu._selftest_block_sums(torch.randn(2, 10, dtype=torch.float64), threads)


def test_shared_memory_is_fresh_nan_in_every_block():
    # Every block writes slots 0..39 only; slots 40..63 were never written by any block, and the
    # previous block's values must not show through (a static array would keep them).
    out = emu._selftest_shared_read_unwritten(4, 64, 40)
    assert torch.equal(out[:, :40], torch.arange(40, dtype=torch.float32).expand(4, 40))
    assert torch.isnan(out[:, 40:]).all()


def _trace(seed, blocks=6, threads=128):
    emu._set_schedule_seed(seed)
    return emu._selftest_schedule_trace(blocks, threads)


def test_schedule_reproduces_with_its_seed_and_varies_across_seeds(schedule_seed):
    blocks, threads = 6, 128
    traces = {seed: _trace(seed, blocks, threads) for seed in range(6)}
    assert torch.equal(traces[3], _trace(3, blocks, threads))
    starts = {seed: t[..., 0] for seed, t in traces.items()}
    passes = {seed: t[..., 1] for seed, t in traces.items()}
    for seed in traces:
        events = torch.cat([starts[seed].flatten(), passes[seed].flatten()])
        assert torch.equal(events.sort().values, torch.arange(2 * blocks * threads))
        # Blocks run one after another; within a block every thread starts before any passes
        # the barrier.
        first = starts[seed].min(dim=1).values
        order = first.argsort()
        for k, b in enumerate(order.tolist()):
            block_events = torch.cat([starts[seed][b], passes[seed][b]])
            assert block_events.min() == 2 * threads * k and block_events.max() == 2 * threads * (k + 1) - 1
            assert starts[seed][b].max() < passes[seed][b].min()
    block_orders = {tuple(starts[s].min(dim=1).values.argsort().tolist()) for s in traces}
    assert len(block_orders) > 1, "the block order does not depend on the seed"
    assert tuple(range(blocks)) not in block_orders or len(block_orders) > 2
    # Thread start orders within a block: not always ascending, not always the same.
    start_orders = {tuple(starts[s][0].argsort().tolist()) for s in traces}
    assert len(start_orders) > 1
    assert any(order != tuple(range(threads)) and order != tuple(reversed(range(threads))) for order in start_orders)


def _race_inputs(which, blocks, threads):
    rows = 2 * blocks if which == "overwrite_before_read" else blocks
    return torch.randint(0, 1 << 20, (rows, threads), dtype=torch.int32)


def _race_free_result(which, values, threads):
    if which == "missing_barrier":
        return values.roll(-32, dims=1)
    rounds = values.view(-1, 2, threads).roll(-32, dims=2)
    return rounds[:, 0] + 2 * rounds[:, 1]


@pytest.mark.parametrize("which", ["missing_barrier", "overwrite_before_read"])
def test_planted_shared_memory_races_are_exposed(schedule_seed, which):
    # A read before the neighbour warp's write (NaN-filled shared memory shows through) and a
    # second round's write before the first round's read (a warp running ahead): some seeded
    # schedule must give a result different from the race-free one.
    threads, blocks = 128, 4
    values = _race_inputs(which, blocks, threads)
    expected = _race_free_result(which, values, threads)
    wrong = 0
    for seed in range(8):
        schedule_seed(seed)
        out = emu._selftest_race(which, values, threads).view(expected.shape)
        wrong += not torch.equal(out, expected)
    assert wrong > 0


def test_planted_global_write_race_depends_on_the_schedule(schedule_seed):
    # Every thread of a block writes one element: which one wins must vary, as on a GPU.
    winners = set()
    for seed in range(8):
        schedule_seed(seed)
        winners.update(emu._selftest_race("global_write", torch.zeros(16, dtype=torch.int32), 64).tolist())
    assert len(winners) > 1


@pytest.mark.parametrize(
    "which, message",
    [
        ("divergent", "two different __syncthreads"),
        ("early_return", "reached by 32 of 64 threads"),
        ("partial_warp", "warp collective .* reached by 16 of 32 threads"),
    ],
)
def test_barrier_misuse_is_an_error(which, message):
    with pytest.raises(RuntimeError, match=message):
        emu._selftest_misuse(which, 64)


def test_emulator_recovers_after_a_failed_launch():
    with pytest.raises(RuntimeError):
        emu._selftest_misuse("divergent", 64)
    values = torch.randn(2, 100, dtype=torch.float64)
    torch.testing.assert_close(emu._selftest_block_sums(values, 64)[:, 0], values.sum(dim=1))


def test_a_barrier_switched_off_at_run_time_breaks_the_kernel(schedule_seed):
    # The mutation switch: the tile rotation's barrier, off, lets threads read slots their
    # neighbours have not written yet; on again, the kernel is right.
    source = CSRC / "device" / "emulator_selftest_kernels.h"
    text = source.read_text().splitlines()
    kernel = next(i for i, line in enumerate(text) if "void shared_tile_rotate_kernel" in line)
    sites = barrier_sites(source)
    site = next(s for s in sites if int(s.split(":")[1]) > kernel + 1)
    threads = 128
    values = torch.randint(0, 1 << 20, (4 * threads,), dtype=torch.int32)
    expected = values.view(4, threads).roll(-1, dims=1).reshape(-1)
    assert torch.equal(emu._selftest_shared_tile_rotate(values, threads), expected)
    assert site in emu._barrier_sites()
    previous = emu._disabled_barrier()
    emu._disable_barrier(site)
    try:
        broken = 0
        for seed in range(4):
            schedule_seed(seed)
            broken += not torch.equal(emu._selftest_shared_tile_rotate(values, threads), expected)
    finally:
        emu._disable_barrier(previous)
    assert broken > 0
    assert torch.equal(emu._selftest_shared_tile_rotate(values, threads), expected)
