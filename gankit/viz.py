"""Figures a person looks at: 2-D sample strips over the data, loss curves. matplotlib, headless (Agg)."""
from __future__ import annotations

import json
from pathlib import Path

from typing import Any

import numpy as np
import torch

from gankit.io import atomic_path


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported on first use: every CLI command imports this module, and
    pyplot alone costs a third of a second of start-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def __getattr__(name: str) -> Any:  # ``from gankit.viz import plt`` (PEP 562): pyplot, loaded lazily
    if name == "plt":
        return _pyplot()
    raise AttributeError(f"module 'gankit.viz' has no attribute {name!r}")


def _save(fig: "Any", path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def _scatter(ax: "Any", real: np.ndarray, fake: np.ndarray, title: str, limit: float) -> None:
    ax.scatter(real[:, 0], real[:, 1], s=2, c="#1f77b4", alpha=0.25, linewidths=0, label="data")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, c="#d62728", alpha=0.6, linewidths=0, label="generated")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def _limit(real: np.ndarray) -> float:
    return float(np.abs(real).max()) * 1.35 + 1e-6


def toy_strip(snapshots: list[tuple[int, np.ndarray]], real: np.ndarray, path: Path, title: str = "") -> None:
    """One row of scatter plots, generated samples over the data, one per snapshot step."""
    n = max(1, len(snapshots))
    fig, axes = _pyplot().subplots(1, n, figsize=(2.4 * n, 2.6), squeeze=False)
    limit = _limit(real)
    for ax, (step, fake) in zip(axes[0], snapshots):
        _scatter(ax, real, fake, f"step {step}", limit)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def toy_scatter(fake: np.ndarray, real: np.ndarray, path: Path, title: str) -> None:
    fig, ax = _pyplot().subplots(figsize=(4, 4))
    _scatter(ax, real, fake, title, _limit(real))
    ax.legend(loc="upper right", fontsize=7, markerscale=4)
    _save(fig, path)


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def loss_curves(metrics_path: Path, path: Path, title: str = "") -> None:
    """D and G losses (and any penalty terms) against G steps, from metrics.jsonl."""
    records = [r for r in read_metrics(metrics_path) if "d_loss" in r]
    keys = [k for k in records[0] if k not in ("step", "seconds", "steps_per_second", "lr_g", "lr_d")] if records else []
    fig, ax = _pyplot().subplots(figsize=(6, 3.2))
    steps = [r["step"] for r in records]
    for key in keys:
        ax.plot(steps, [r.get(key, np.nan) for r in records], label=key, linewidth=1.2)
    ax.set_xlabel("generator step")
    ax.set_ylabel("mean over the logging window")
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    _save(fig, path)


def image_grid(images: torch.Tensor, nrow: int | None = None) -> torch.Tensor:
    """A [3, H, W] uint8 grid of images in [-1, 1] (torchvision's make_grid), square by default."""
    import math

    from torchvision.utils import make_grid

    from gankit.data.base import to_uint8

    images = images.detach().float().cpu()
    nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=1.0)
    return to_uint8(grid).to(torch.uint8)


def save_png(grid: torch.Tensor, path: Path) -> None:
    from PIL import Image

    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def progress_gif(paths: list[Path], path: Path, ms_per_frame: int = 400) -> None:
    """An animated GIF of the sample grids in training order (the last frame held longer)."""
    from PIL import Image

    if not paths:
        return
    frames = [Image.open(p).convert("RGB") for p in paths]
    durations = [ms_per_frame] * (len(frames) - 1) + [ms_per_frame * 5]
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
