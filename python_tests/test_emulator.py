"""Tests of the CPU emulator of the CUDA execution model itself: a correct kernel gives the
right answer on awkward sizes, and every barrier misuse is reported as an error."""

import pytest
import torch

import batchgan_ext._emulated as emu


@pytest.mark.parametrize("threads", [32, 64, 96, 256])
@pytest.mark.parametrize("n", [1, 31, 257, 1000])
def test_block_reduction_matches_sum(threads, n):
    values = torch.randn(3, n, dtype=torch.float64)
    sums = emu._selftest_block_sums(values, threads)
    torch.testing.assert_close(sums, values.sum(dim=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 33, 128, 1024])
def test_syncthreads_orders_shared_memory(threads):
    # Each thread reads its neighbour's shared-memory slot after the barrier: any thread
    # passing the barrier early would read a stale value from the previous block.
    values = torch.randint(0, 1 << 20, (3 * threads,), dtype=torch.int32)
    out = emu._selftest_shared_tile_rotate(values, threads)
    expected = values.view(3, threads).roll(-1, dims=1).reshape(-1)
    assert torch.equal(out, expected)


@pytest.mark.parametrize(
    "which, message",
    [
        ("divergent", "two different __syncthreads"),
        ("early_return", "reached by 32 of 64 threads"),
        ("partial_warp", "warp collective"),
    ],
)
def test_barrier_misuse_is_an_error(which, message):
    with pytest.raises(RuntimeError, match=message):
        emu._selftest_misuse(which, 64)


def test_emulator_recovers_after_a_failed_launch():
    with pytest.raises(RuntimeError):
        emu._selftest_misuse("divergent", 64)
    values = torch.randn(2, 100, dtype=torch.float64)
    torch.testing.assert_close(emu._selftest_block_sums(values, 64), values.sum(dim=1))
