"""Sets across processes (batchgan_ext.distributed) with 2 and 3 CPU processes on gloo, loopback only.

Layout (b), sets spanning ranks: the ranks' outputs and gradients equal the single-process ones on the
concatenated batch in float64, including sets split unevenly across ranks. A rank that dies makes the
others fail with an error within the process group's timeout instead of hanging.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

import batchgan_ext as bg
from batchgan_ext.distributed import SpanningSets, check_local_sets, convert_spanning_sets

sys.path.insert(0, os.path.dirname(__file__))
import distributed_worker as worker

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(case: str, sizes: list[int], tmp_path) -> list[subprocess.Popen]:
    """One process per rank, with the environment torchrun gives its workers."""
    port = _free_port()
    procs = []
    for rank in range(len(sizes)):
        env = dict(
            os.environ,
            RANK=str(rank),
            WORLD_SIZE=str(len(sizes)),
            LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            OMP_NUM_THREADS="1",
        )
        out = str(tmp_path / f"rank{rank}.pt")
        cmd = [sys.executable, WORKER, case, out, ",".join(map(str, sizes))]
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(tmp_path))
        )
    return procs


def _wait(procs, timeout: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    results = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError(f"a rank did not finish within {timeout} s (hang)") from None
        results.append((p.returncode, out.decode(errors="replace")))
    return results


@pytest.mark.parametrize(
    "sizes",
    [
        [6, 6],  # sets of 4: the second set spans the two ranks
        [5, 7],  # uneven split
        [3, 4, 5],  # three ranks, every set split
    ],
)
def test_spanning_sets_equal_single_process(sizes, tmp_path):
    results = _wait(_launch("layers", sizes, tmp_path), timeout=120)
    for rank, (code, out) in enumerate(results):
        assert code == 0, f"rank {rank} failed:\n{out}"
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(len(sizes))]

    # The same discriminator on the concatenated batch in one process, with the package's fused kernels.
    D = worker.build_discriminator()
    x_all, w_all = worker.global_batch(sum(sizes))
    x = x_all.clone().requires_grad_(True)
    logits = D(x).reshape(-1)
    means = bg.set_mean(x, sum(sizes) // worker.SET_SIZE)
    ((logits * w_all).sum() + means.square().sum()).backward()

    tol = dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(torch.cat([r["logits"] for r in ranks]), logits.detach(), **tol)
    torch.testing.assert_close(torch.cat([r["grad_x"] for r in ranks]), x.grad, **tol)
    for r in ranks:
        torch.testing.assert_close(r["means"], means.detach(), **tol)
        for got, param in zip(r["grads"], D.parameters()):
            torch.testing.assert_close(got, param.grad, **tol)


def test_two_process_training_equals_one_process(tmp_path):
    """Layout (a) in the Trainer: every rank draws the global batch and keeps its shard, DDP averages
    the gradients, so 2 processes reach the 1-process parameters step for step (float32 sums in
    another order: a tolerance of 1e-5 after 4 Adam steps at lr 1e-3)."""
    results = _wait(_launch("train", [16, 16], tmp_path), timeout=300)
    for rank, (code, out) in enumerate(results):
        assert code == 0, f"rank {rank} failed:\n{out}"
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    single = worker.train_states()
    for method in worker.TRAIN_METHODS:
        for network in ("generator", "discriminator"):
            want = single[method][network]
            for name, value in want.items():
                for r in ranks:  # the ranks agree with each other and with one process
                    torch.testing.assert_close(
                        r[method][network][name], value, rtol=1e-5, atol=1e-5, msg=f"{method} {network}.{name}"
                    )
            moved = any(not torch.equal(v, w) for v, w in zip(want.values(), worker.initial_state(method, network)))
            assert moved, f"{method}: the {network} did not train"


def test_cli_under_torchrun(tmp_path):
    """python -m torch.distributed.run (torchrun) --nproc_per_node 2 -m batchgan_ext.train: one run,
    rank 0 writes metrics.json (with world_size) and the checkpoint, from which every rank resumes."""
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
        "-m", "batchgan_ext.train", "--dataset", "ring8", "--method", "mbgan", "--steps", "3", "--batch-size", "32",
        "--set-size", "8", "--hidden", "16", "--eval-samples", "200", "--no-progress", "--checkpoint-every", "2",
        "--out", str(out),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and [r["world_size"] for r in metrics["runs"]] == [2]
    assert done.stdout.count("mbgan/ring8/seed 0:") == 1  # rank 0 alone reports
    checkpoint = torch.load(out / "mbgan.pt", weights_only=True)
    assert checkpoint["step"] == 3
    # Every rank resumes from rank 0's checkpoint (the run is complete: nothing left to train).
    resumed = subprocess.run(
        [*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path)
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads((out / "metrics.json").read_text())["runs"][0]["config"] == metrics["runs"][0]["config"]


def test_a_rank_without_samples_fails_every_rank_alike(tmp_path):
    results = _wait(_launch("layers", [4, 0, 8], tmp_path), timeout=120)
    for rank, (code, out) in enumerate(results):
        assert code != 0 and "x: rank 1 holds no samples (ranks: [4, 0, 8])" in out, f"rank {rank}:\n{out}"


def test_dead_rank_fails_the_others_within_the_timeout(tmp_path):
    start = time.monotonic()
    results = _wait(_launch("die", [1, 1, 1], tmp_path), timeout=60)
    elapsed = time.monotonic() - start
    assert results[1][0] == 3
    for rank in (0, 2):
        code, out = results[rank]
        assert code != 0, f"rank {rank} survived the death of rank 1:\n{out}"
        assert not (tmp_path / f"rank{rank}.pt").exists()
    assert elapsed < 60


def test_check_local_sets():
    check_local_sets(32, 16)
    with pytest.raises(ValueError, match="batch_size: the per-rank batch of 24 samples does not hold whole sets of 16"):
        check_local_sets(24, 16)
    with pytest.raises(ValueError, match="set_size: expected an integer"):
        check_local_sets(24, 1.5)


def test_convert_spanning_sets_refuses_what_it_cannot_span():
    with pytest.raises(ValueError, match=r"module.0: EquivariantLinear has no set_size"):
        convert_spanning_sets(torch.nn.Sequential(bg.EquivariantLinear(2, 2, num_sets=2)))
    batch_norm = bg.SetBatchNorm(torch.nn.BatchNorm1d(2), set_size=2)
    with pytest.raises(ValueError, match=r"module.1: SetBatchNorm"):
        convert_spanning_sets(torch.nn.Sequential(bg.EquivariantLinear(2, 2, set_size=2), batch_norm))
    with pytest.raises(ValueError, match="module: has no set layer"):
        convert_spanning_sets(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="module: expected an nn.Module"):
        convert_spanning_sets("D")
    with pytest.raises(ValueError, match="rank_sizes: the global batch of 7 samples does not split into sets of 4"):
        SpanningSets(4, rank_sizes=[3, 4])


def test_spanning_layers_need_a_process_group():
    layer = convert_spanning_sets(bg.EquivariantLinear(2, 2, set_size=2))
    with pytest.raises(RuntimeError, match="initialised process group"):
        layer(torch.randn(4, 2))


@pytest.mark.parametrize("complement", [False, True])
def test_mixed_batch_shards_draw_the_global_mixing(complement):
    """Ranks with generators in the same state draw, together, the single-process mixing of the global batch."""
    world, n, sets = 3, 8, 2
    real, fake = torch.randn(world * n, 3), torch.randn(world * n, 3)
    mixer = bg.MixedBatch(gamma=0.5, num_sets=sets * world, complement=complement)
    batch, target, beta = mixer(real, fake, generator=torch.Generator().manual_seed(5))
    shard_mixer = bg.MixedBatch(gamma=0.5, num_sets=sets, complement=complement)
    parts = [
        shard_mixer(
            real[r * n : (r + 1) * n], fake[r * n : (r + 1) * n], torch.Generator().manual_seed(5), shard=(r, world)
        )
        for r in range(world)
    ]
    assert torch.equal(torch.cat([p[2] for p in parts]), beta)
    halves = 2 if complement else 1
    for half in range(halves):  # the mixed batch, then the complement: each is the ranks' parts in rank order
        assert torch.equal(
            torch.cat([p[0][half * n : (half + 1) * n] for p in parts]),
            batch[half * world * n : (half + 1) * world * n],
        )
        assert torch.equal(
            torch.cat([p[1][half * sets : (half + 1) * sets] for p in parts]),
            target[half * world * sets : (half + 1) * world * sets],
        )


@pytest.mark.parametrize(
    "shard, message",
    [
        ((3, 3), "rank < world_size"),
        ((0,), r"expected \(rank, world_size\)"),
        ((-1, 2), "shard: expected a non-negative"),
    ],
)
def test_mixed_batch_rejects_bad_shards(shard, message):
    with pytest.raises(ValueError, match=message):
        bg.MixedBatch(num_sets=1)(torch.randn(4, 2), torch.randn(4, 2), shard=shard)
