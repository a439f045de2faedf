"""The latent prior: what G is fed. Noise z (normal or uniform) and, for conditional runs, the class y.

Training draws from the global torch RNG on the training device (resume restores it); sampling and evaluation
pass a ``torch.Generator`` of their own so that they never move the training noise.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from gankit.errors import GankitError

ZDist = Literal["normal", "uniform"]
ClassDist = Literal["uniform", "data"]


class Latents(NamedTuple):
    z: Tensor
    y: Tensor | None  # class indices [B] of a conditional run, else None


class Prior:
    """z ~ N(0, I) or U(-1, 1)^z_dim; y ~ uniform over the classes, or the data's class frequencies."""

    def __init__(self, z_dim: int, z_dist: ZDist = "normal", n_classes: int = 0,
                 class_probs: Tensor | None = None) -> None:
        self.z_dim, self.z_dist, self.n_classes = z_dim, z_dist, n_classes
        self.class_probs = class_probs  # None: uniform

    @property
    def conditional(self) -> bool:
        return self.n_classes > 0

    def noise(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """n noise vectors. With a generator they are drawn on the CPU (reproducible on any device) and moved."""
        where = "cpu" if generator is not None else device
        if self.z_dist == "uniform":
            z = torch.rand(n, self.z_dim, device=where, generator=generator).mul_(2).sub_(1)
        else:
            z = torch.randn(n, self.z_dim, device=where, generator=generator)
        return z.to(device)

    def classes(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor | None:
        if not self.conditional:
            return None
        where = "cpu" if generator is not None else device
        if self.class_probs is None:
            y = torch.randint(self.n_classes, (n,), device=where, generator=generator)
        else:
            y = torch.multinomial(self.class_probs.to(where), n, replacement=True, generator=generator)
        return y.to(device)

    def sample(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Latents:
        return Latents(self.noise(n, device, generator), self.classes(n, device, generator))

    def grid_classes(self, n: int, device: torch.device) -> Tensor | None:
        """Classes for a snapshot grid of n images: one row per class (class k fills row k), cycling when there
        are more rows than classes."""
        if not self.conditional:
            return None
        per_row = max(1, n // self.n_classes) if n >= self.n_classes else 1
        return (torch.arange(n, device=device) // per_row) % self.n_classes

    def check_class(self, k: int) -> None:
        if not self.conditional:
            raise GankitError("--class and --per-class need a conditional run (model.conditional: true)")
        if not 0 <= k < self.n_classes:
            raise GankitError(f"class {k} is out of range: this run has classes 0..{self.n_classes - 1}")
