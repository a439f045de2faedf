"""The latent prior: what G is fed. Noise z (normal or uniform), InfoGAN's latent codes (Chen et al. 2016) and,
for conditional runs, the class y.

With codes (``model.codes``), the z that G receives is ``[noise, one_hot(c_1), ..., one_hot(c_k), c_cont]``:
z_dim noise values, then each categorical code as a one-hot block, then the continuous codes; G's input size is
``Prior.dim``. The codes ride in z, so every training step's ``StepContext.z`` carries them, and
``CodeSpec.split`` slices them back.

Training draws from the global torch RNG on the training device (resume restores it); sampling and evaluation
pass a ``torch.Generator`` of their own so that they never move the training noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.errors import GankitError

ZDist = Literal["normal", "uniform"]
ClassDist = Literal["uniform", "data"]


@dataclass(frozen=True)
class CodeSpec:
    """InfoGAN's latent codes: categorical codes of the given sizes, each uniform over its values, and
    ``continuous`` codes, each N(0, 1) or U(-1, 1) (``continuous_dist``)."""

    categorical: tuple[int, ...] = ()
    continuous: int = 0
    continuous_dist: ZDist = "uniform"

    @property
    def dim(self) -> int:
        """Values the codes take in z: the one-hot blocks and the continuous codes."""
        return sum(self.categorical) + self.continuous

    def __bool__(self) -> bool:
        return self.dim > 0

    def draw(self, n: int, where: torch.device | str, generator: torch.Generator | None = None
             ) -> tuple[Tensor, Tensor]:
        """(categorical indices [n, len(categorical)] long, continuous values [n, continuous]), on ``where``."""
        cat = [torch.randint(k, (n,), device=where, generator=generator) for k in self.categorical]
        indices = torch.stack(cat, 1) if cat else torch.zeros(n, 0, dtype=torch.long, device=where)
        if self.continuous_dist == "uniform":
            cont = torch.rand(n, self.continuous, device=where, generator=generator).mul_(2).sub_(1)
        else:
            cont = torch.randn(n, self.continuous, device=where, generator=generator)
        return indices, cont

    def encode(self, indices: Tensor, cont: Tensor) -> Tensor:
        """The codes as they sit in z: one one-hot block per categorical code, then the continuous codes."""
        blocks = [F.one_hot(indices[:, j], k).to(cont.dtype) for j, k in enumerate(self.categorical)]
        return torch.cat([*blocks, cont], 1)

    def split(self, z: Tensor) -> tuple[list[Tensor], Tensor]:
        """From a full z (codes last): (the index of each categorical code [B], the continuous codes [B, n])."""
        codes = z[:, z.shape[1] - self.dim:]
        indices, at = [], 0
        for k in self.categorical:
            indices.append(codes[:, at:at + k].argmax(1))
            at += k
        return indices, codes[:, at:]

    def with_category(self, z: Tensor, value: int | Tensor, code: int = 0) -> Tensor:
        """z with categorical code ``code`` set to ``value`` (an int, or one index per row)."""
        start = z.shape[1] - self.dim + sum(self.categorical[:code])
        k = self.categorical[code]
        z = z.clone()
        index = torch.as_tensor(value, device=z.device).expand(z.shape[0])
        z[:, start:start + k] = F.one_hot(index.long(), k).to(z.dtype)
        return z

    def with_continuous(self, z: Tensor, values: Tensor, code: int = 0) -> Tensor:
        """z with continuous code ``code`` set to ``values`` [B]."""
        z = z.clone()
        z[:, z.shape[1] - self.continuous + code] = values.to(z.dtype)
        return z

    def categorical_entropy(self) -> float:
        """H(c) of the categorical codes, in nats: sum of log K."""
        return sum(math.log(k) for k in self.categorical)

    def continuous_entropy(self) -> float:
        """Differential entropy of the continuous codes' prior, in nats: log 2 per U(-1, 1) code, 1/2 log(2 pi e)
        per N(0, 1) code."""
        per = math.log(2.0) if self.continuous_dist == "uniform" else 0.5 * math.log(2 * math.pi * math.e)
        return self.continuous * per


class Latents(NamedTuple):
    z: Tensor
    y: Tensor | None  # class indices [B] of a conditional run, else None


class Prior:
    """z ~ N(0, I) or U(-1, 1)^z_dim, followed by InfoGAN's codes when there are any; y ~ uniform over the
    classes, or the data's class frequencies."""

    def __init__(self, z_dim: int, z_dist: ZDist = "normal", n_classes: int = 0,
                 class_probs: Tensor | None = None, codes: CodeSpec | None = None) -> None:
        self.z_dim, self.z_dist, self.n_classes = z_dim, z_dist, n_classes
        self.class_probs = class_probs  # None: uniform
        self.codes = codes or CodeSpec()

    @property
    def dim(self) -> int:
        """G's input size: the noise and the codes."""
        return self.z_dim + self.codes.dim

    @property
    def has_categorical(self) -> bool:
        return bool(self.codes.categorical)

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

    def latent(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """What G receives besides y: the noise, and the codes after it when the run has codes."""
        z = self.noise(n, device, generator)
        if not self.codes:
            return z
        where = "cpu" if generator is not None else device
        return torch.cat([z, self.codes.encode(*self.codes.draw(n, where, generator)).to(device)], 1)

    def sample(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Latents:
        return Latents(self.latent(n, device, generator), self.classes(n, device, generator))

    @property
    def grid_values(self) -> int:
        """How many values a snapshot grid shows one row each: the classes of a conditional run, the values of an
        InfoGAN run's first categorical code; 0 for free grids."""
        if self.conditional:
            return self.n_classes
        return self.codes.categorical[0] if self.has_categorical else 0

    def grid_rows(self, n: int, device: torch.device) -> Tensor | None:
        """The row value of each image of a snapshot grid of n images: value k fills row k (cycling when there are
        more rows than values); None for free grids."""
        k = self.grid_values
        if not k:
            return None
        per_row = max(1, n // k) if n >= k else 1
        return (torch.arange(n, device=device) // per_row) % k

    def grid(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Latents:
        """Latents of a snapshot grid of about n images: free draws, or whole rows, one per class (conditional) or
        per value of the first categorical code (InfoGAN), the noise and the other codes drawn per image."""
        k = self.grid_values
        if not k:
            return self.sample(n, device, generator)
        n = max(1, n // k) * k
        latents = self.sample(n, device, generator)
        rows = self.grid_rows(n, device)
        if self.conditional:
            return Latents(latents.z, rows)
        return Latents(self.codes.with_category(latents.z, rows), latents.y)

    def check_class(self, k: int) -> None:
        """--class K: a class of a conditional run, or a value of an InfoGAN run's (first) categorical code."""
        if not self.conditional and self.has_categorical:
            if not 0 <= k < self.codes.categorical[0]:
                raise GankitError(f"class {k} is out of range: this InfoGAN run's categorical code takes values "
                                  f"0..{self.codes.categorical[0] - 1}")
            return
        if not self.conditional:
            raise GankitError("--class and --per-class need a conditional run (model.conditional: true) or, for "
                              "--class, an InfoGAN run with a categorical code (model.codes.categorical)")
        if not 0 <= k < self.n_classes:
            raise GankitError(f"class {k} is out of range: this run has classes 0..{self.n_classes - 1}")
