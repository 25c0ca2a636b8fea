"""Why the `pacgan` row fails at the `results` budget: the packed discriminator in the game vs. alone.

Trains pacgan (results preset, seed 0) for `--game-steps` generator steps, printing D's loss, then
freezes the generator and trains the same discriminator alone for `--alone-steps` steps on fresh
real and fake packs. With `--n-disc 1` (the preset's value when this was measured; grid25's is now 2)
the loss sits at log 2 (0.693) in the game; alone it falls, so the packed D can tell the two apart.
`--packing 1` runs the same with the unpacked (standard) D for comparison.

    .venv/bin/python results/diagnostics/pacgan_game.py [--packing 4] [--lr 5e-4] [--beta1 0.5]
        [--n-disc 1] [--hidden 128] [--batch-size 256] [--no-g-batch-norm] [--game-steps 300] [--alone-steps 600]

Every option left out keeps the `results` preset's value.
"""

import argparse

import torch

from batchgan_ext.train.trainer import TrainConfig, Trainer, preset_values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packing", type=int, default=4)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--beta1", type=float, default=None)
    p.add_argument("--n-disc", type=int, default=None)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--no-g-batch-norm", action="store_true")
    p.add_argument("--game-steps", type=int, default=300)
    p.add_argument("--alone-steps", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    overrides = {
        name: getattr(args, name)
        for name in ("lr", "beta1", "n_disc", "hidden", "batch_size")
        if getattr(args, name) is not None
    }
    if args.no_g_batch_norm:
        overrides["g_batch_norm"] = False
    config = TrainConfig(
        **{**preset_values("results", "grid25"), **overrides}, method="pacgan", packing=args.packing, seed=args.seed
    )
    trainer = Trainer(config)
    print(f"game: pacgan, packing {args.packing}, {overrides or 'the results preset'}")
    while trainer.step < args.game_steps:
        losses = trainer.train_step()
        if trainer.step % 50 == 0:
            print(f"  step {trainer.step:5d}  loss_d {losses['loss_d']:.4f}  loss_g {losses['loss_g']:.4f}")
    print("alone: the generator frozen, the discriminator trained on fresh packs")
    for step in range(args.alone_steps + 1):
        loss = trainer.discriminator_step()
        if step % 100 == 0:
            print(f"  step {step:5d}  loss_d {loss.item():.4f}")


if __name__ == "__main__":
    main()
