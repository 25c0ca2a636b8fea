"""Is the image table's KL a matter of which generator is scored? An average of G's weights against G itself.

Trains one method at the `image-results` preset on stacked-digits and, every `--every` generator steps, scores
10,000 samples (modes covered, reverse KL, classifier FD: `image_mode_metrics`) of
  eval            the trained generator in eval mode, batch norm with its running statistics (what the table scores);
  ema<d>          an exponential moving average of G's weights and buffers with decay d
                  (torch.optim.swa_utils.AveragedModel, StyleGAN2-ADA's G_ema idea);
  ema<d>-bn       the same average with its batch-norm statistics recomputed on the 10,000 scoring latents
                  (torch.optim.swa_utils.update_bn): averaged running statistics need not fit averaged weights;
and at the end the trained generator in training mode (batch statistics of the 10,000 samples), which tells a
bad running average apart from a bad generator. Rows go to `--out` (JSON) as they come.

    .venv/bin/python results/diagnostics/stacked_digits_generator_average.py --method mbgan --seed 10 \
        --out results/diagnostics/stacked-digits-generator-average-seed10/mbgan.json

Seed 10 is kept apart from the table. The training configuration is the preset's; only method and seed are options.
"""

import argparse
import copy
import json

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from batchgan_ext.train.digit_classifier import load_digit_classifier
from batchgan_ext.train.image_metrics import image_mode_metrics
from batchgan_ext.train.trainer import TrainConfig, Trainer, preset_values

SAMPLES = 10000
CHUNK = 500  # latents per forward pass in eval mode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="mbgan")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--decays", default="0.99,0.999")
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    values = preset_values("image-results", "stacked-digits")
    config = TrainConfig(**values, method=args.method, seed=args.seed)
    trainer = Trainer(config)
    averages = {
        float(d): AveragedModel(trainer.generator, multi_avg_fn=get_ema_multi_avg_fn(float(d)), use_buffers=True)
        for d in args.decays.split(",")
    }
    classifier = load_digit_classifier()
    latents = torch.randn(SAMPLES, config.latent_dim, generator=torch.Generator().manual_seed(12345))
    rows = []

    def score(tag: str, generator: torch.nn.Module, training_mode: bool = False) -> None:
        was_training = generator.training
        generator.train(training_mode)
        with torch.no_grad():
            samples = generator(latents) if training_mode else torch.cat([generator(z) for z in latents.split(CHUNK)])
        generator.train(was_training)
        m = image_mode_metrics(samples, trainer.dataset, classifier)
        row = dict(
            step=trainer.step,
            generator=tag,
            modes_covered=m["modes_covered"],
            reverse_kl=m["reverse_kl"],
            frechet_distance=m["frechet_distance"],
        )
        print(row, flush=True)
        rows.append(row)
        with open(args.out, "w") as f:
            json.dump(dict(config=vars(args), preset="image-results", rows=rows), f, indent=1)

    while trainer.step < config.steps:
        trainer.train_step()
        for average in averages.values():
            average.update_parameters(trainer.generator)
        if trainer.step % args.every == 0 or trainer.step == config.steps:
            score("eval", trainer.generator)
            for decay, average in averages.items():
                score(f"ema{decay}", average.module)
                refreshed = copy.deepcopy(average.module)
                update_bn(latents.split(CHUNK), refreshed)
                score(f"ema{decay}-bn", refreshed)
    score("training-mode", copy.deepcopy(trainer.generator), training_mode=True)


if __name__ == "__main__":
    main()
