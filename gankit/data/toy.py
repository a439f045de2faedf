"""2-D Gaussian mixtures of the mode-collapse studies (PacGAN protocol defaults: Lin et al. 2018)."""
from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import Tensor

from gankit.data.base import InMemoryData
from gankit.registry import AT_LEAST_ONE, DATASETS, POSITIVE


def ring_means(n_modes: int, radius: float) -> Tensor:
    # angle 2*pi*k/K for k = 0..K-1: linspace(0, 2*pi, K) would put the last mode on top of the first.
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_means(side: int, spacing: float) -> Tensor:
    coords = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


def mixture(means: Tensor, std: float, n: int, seed: int, balanced: bool = False) -> InMemoryData:
    """n samples, equally likely modes (``balanced``: exactly n / K per mode, as the reference Ring8 and Grid25
    hold 400 each); the data set is fixed by ``seed``, independent of the training seed. Each sample's mode
    index is its class label (for conditional runs)."""
    gen = torch.Generator().manual_seed(seed)
    modes = torch.arange(n) % len(means) if balanced else torch.randint(len(means), (n,), generator=gen)
    x = means[modes] + std * torch.randn(n, 2, generator=gen)
    return InMemoryData(x, "toy", {"means": means, "std": std}, labels=modes)


Std = Annotated[float, POSITIVE]
Count = Annotated[int, AT_LEAST_ONE]


@DATASETS.register("ring", "ring of Gaussians (default 8 modes, radius 1, std 0.01)")
def ring(*, n_modes: Count = 8, radius: Annotated[float, POSITIVE] = 1.0, std: Std = 0.01, n: Count = 100_000,
         seed: int = 0, balanced: bool = False) -> InMemoryData:
    """The reference Ring8 (xyfJASON/GANs-Implementations): radius 10, std 0.5, 400 points per mode, scaled by
    1/15, i.e. radius 0.6666667, std 0.0333333, n 3200, balanced: true."""
    return mixture(ring_means(n_modes, radius), std, n, seed, balanced)


@DATASETS.register("grid", "grid of Gaussians (default 5x5 means {-4,-2,0,2,4}^2, std 0.05)")
def grid(*, side: Count = 5, spacing: Annotated[float, POSITIVE] = 2.0, std: Std = 0.05, n: Count = 100_000,
         seed: int = 0, balanced: bool = False) -> InMemoryData:
    """The reference Grid25: means linspace(-10, 10, 5)^2, std 0.5, 400 per mode, scaled by 1/15, i.e.
    spacing 0.3333333, std 0.0333333, n 10000, balanced: true."""
    return mixture(grid_means(side, spacing), std, n, seed, balanced)


MAX_POINTS = 500


@DATASETS.register("points", "a mixture of Gaussians at given 2-D points (the lab's drawn data), equally likely")
def points(*, points: list[list[float]] | None = None, std: Std = 0.05, n: Count = 10_000, seed: int = 0,
           balanced: bool = True) -> InMemoryData:
    """One mode per point; the mode metrics count them as the modes. ``points``: a list of [x, y] pairs."""
    from gankit.errors import ConfigError

    if not points:
        raise ConfigError("data.points is empty: give at least one [x, y] point (in the lab: draw some)")
    if len(points) > MAX_POINTS:
        raise ConfigError(f"data.points holds {len(points)} points; at most {MAX_POINTS}")
    if any(len(p) != 2 for p in points):
        raise ConfigError("data.points must be a list of [x, y] pairs")
    means = torch.tensor(points, dtype=torch.float32)
    if not torch.isfinite(means).all():
        raise ConfigError("data.points must be finite numbers")
    return mixture(means, std, n, seed, balanced)
