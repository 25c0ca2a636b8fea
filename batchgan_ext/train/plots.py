"""PNG figures of a run or a comparison: generated samples over the mode centres, one panel per
method (like the BGAN paper's Fig. 3), or a grid of generated images per method, and the loss
curves."""

from collections.abc import Sequence

import torch

from ._extras import require

__all__ = ["plot_alpha", "plot_image_samples", "plot_samples", "plot_losses", "require_plotting"]


def require_plotting() -> None:
    """Fails early, before a run whose results would be plotted, when matplotlib is missing."""
    require("matplotlib", "plotting")


def _pyplot():
    matplotlib = require("matplotlib", "plotting")
    matplotlib.use("Agg")  # files only, no display
    return require("matplotlib.pyplot", "plotting")


def plot_samples(path: str, panels: dict[str, torch.Tensor], means: torch.Tensor, title: str = "") -> None:
    plt = _pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    lim = float(means.abs().max()) * 1.4 + 0.2
    for ax, (name, samples) in zip(axes[0], panels.items()):
        s = samples.detach().cpu()
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.35, color="tab:blue", label="generated")
        ax.scatter(means[:, 0], means[:, 1], s=18, marker="x", color="tab:red", label="mode centres")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(loc="lower left", fontsize=6, markerscale=2)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_image_samples(path: str, panels: dict[str, torch.Tensor], title: str = "", grid: int = 8) -> None:
    """One panel per method: the first grid x grid images (N, C, H, W) in [-1, 1]; one channel is
    shown in grey, three as RGB."""
    plt = _pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.5), squeeze=False)
    for ax, (name, images) in zip(axes[0], panels.items()):
        x = images[: grid * grid].detach().cpu().float()
        c, h, w = x.shape[1:]
        if x.shape[0] < grid * grid:  # pad a short batch with blank tiles
            x = torch.cat([x, torch.full((grid * grid - x.shape[0], c, h, w), -1.0)])
        tiles = x.view(grid, grid, c, h, w).permute(0, 3, 1, 4, 2).reshape(grid * h, grid * w, c)
        tiles = ((tiles + 1) / 2).clamp(0, 1).numpy()
        ax.imshow(tiles[..., 0] if c == 1 else tiles, cmap="gray" if c == 1 else None, vmin=0, vmax=1)
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_losses(path: str, histories: dict[str, dict[str, Sequence[float]]], title: str = "") -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, h in histories.items():
        axes[0].plot(h["step"], h["loss_d"], label=name, linewidth=1)
        axes[1].plot(h["step"], h["loss_g"], label=name, linewidth=1)
    axes[0].set_title("discriminator loss", fontsize=10)
    axes[1].set_title("generator loss", fontsize=10)
    for ax in axes:
        ax.set_xlabel("generator step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_alpha(path: str, histories: dict[str, dict[str, Sequence[float]]], title: str = "") -> None:
    """alpha over training (the trainer's history "alpha"), one line per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for name, h in histories.items():
        if "alpha" in h:
            ax.plot(h["step"], h["alpha"], label=name, linewidth=1)
    ax.set_xlabel("generator step", fontsize=8)
    ax.set_ylabel("alpha", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
