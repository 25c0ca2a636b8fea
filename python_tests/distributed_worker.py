"""One rank of the multi-process tests (test_distributed.py), started as torchrun would start it: RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the environment, gloo on loopback.

    python distributed_worker.py <case> <out.pt> <rank sizes, comma-separated>

Cases:
  layers  a discriminator with every layer that has a spanning-sets path (EquivariantConv2d,
          EquivariantLinear, MinibatchDiscrimination, then per-sample logits) and a SetMean on the side,
          float64, converted with convert_spanning_sets; the rank's rows of a fixed global batch; saves the
          outputs, the input gradient and the parameter gradients summed over the ranks
  train   the Trainer (layout (a): whole sets on each rank, DDP) for a few steps of each method in
          TRAIN_METHODS; saves every method's generator and discriminator parameters
  die     rank 1 exits before the first collective; the others enter it and must fail, not hang
"""

import datetime
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

import batchgan_ext as bg
from batchgan_ext.distributed import convert_spanning_sets

SET_SIZE = 4
TIMEOUT = datetime.timedelta(seconds=20)


def build_discriminator() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        bg.EquivariantConv2d(3, 4, 3, padding=1, set_size=SET_SIZE, activation="leaky_relu", negative_slope=0.2),
        bg.EquivariantConv2d(4, 4, 3, stride=2, set_size=SET_SIZE, activation="relu"),
        nn.Flatten(),
        bg.EquivariantLinear(16, 6, set_size=SET_SIZE, activation="leaky_relu"),
        bg.MinibatchDiscrimination(6, 3, 2, set_size=SET_SIZE, mean=True, bias=True),
        nn.Linear(9, 1),
    ).double()


def global_batch(total: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(total, 3, 5, 5, dtype=torch.float64, generator=generator)
    weights = torch.randn(total, dtype=torch.float64, generator=generator)  # a loss that weighs every sample
    return x, weights


def layers_case(rank: int, sizes: list[int], out_path: str) -> None:
    D = convert_spanning_sets(build_discriminator())
    set_mean = bg.SetMean(set_size=SET_SIZE)
    convert_spanning_sets(set_mean)
    x_all, w_all = global_batch(sum(sizes))
    start = sum(sizes[:rank])
    x = x_all[start : start + sizes[rank]].clone().requires_grad_(True)
    w = w_all[start : start + sizes[rank]]
    logits = D(x).reshape(-1)
    means = set_mean(x)  # every set's mean, on every rank
    # The global loss is the sum of the ranks' losses; the set means are on every rank, so each rank
    # takes 1/world of their term.
    loss = (logits * w).sum() + means.square().sum() / len(sizes)
    loss.backward()
    grads = [p.grad.clone() for p in D.parameters()]
    for g in grads:
        dist.all_reduce(g)
    torch.save({"logits": logits.detach(), "means": means.detach(), "grad_x": x.grad, "grads": grads}, out_path)


TRAIN_METHODS = ("standard", "pacgan", "mixup", "minibatch", "bgan", "mbgan")


def train_config(method: str):
    from batchgan_ext.train import TrainConfig

    # No batch norm in G: DDP keeps per-rank batch statistics (SyncBatchNorm is GPU-only), so only
    # without it is the 2-process run the 1-process run on the same global batches.
    return TrainConfig(
        dataset="ring8",
        method=method,
        steps=4,
        batch_size=32,
        set_size=8,
        minibatch_set_size=16,
        hidden=16,
        g_layers=2,
        d_layers=2,
        g_batch_norm=False,
        lr=1e-3,
        log_every=1,
    )


def initial_state(method: str, network: str) -> list:
    from batchgan_ext.train import Trainer

    return list(getattr(Trainer(train_config(method)), network).state_dict().values())


def train_states() -> dict:
    from batchgan_ext.train import Trainer

    states = {}
    for method in TRAIN_METHODS:
        trainer = Trainer(train_config(method))
        trainer.train(progress=False)
        states[method] = {
            "generator": {k: v.detach().clone() for k, v in trainer.generator.state_dict().items()},
            "discriminator": {k: v.detach().clone() for k, v in trainer.discriminator.state_dict().items()},
        }
    return states


def main() -> None:
    case, out_path, sizes_text = sys.argv[1:4]
    sizes = [int(n) for n in sizes_text.split(",")]
    dist.init_process_group("gloo", timeout=TIMEOUT)
    rank = dist.get_rank()
    try:
        if case == "layers":
            layers_case(rank, sizes, out_path)
        elif case == "train":
            torch.save(train_states(), out_path)
        elif case == "die":
            if rank == 1:
                os._exit(3)
            dist.all_reduce(torch.ones(1))
            dist.barrier()
            torch.save({"survived": True}, out_path)
        else:
            raise ValueError(f"case: expected 'layers', 'train' or 'die', got {case!r}")
    finally:
        if case != "die":
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
