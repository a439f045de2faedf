"""Instance noise (Sønderby et al. 2016; Arjovsky & Bottou 2017): D sees x + sigma_t * N(0, I), real and
generated alike, in every phase. sigma_t = sigma * max(0, 1 - step / anneal_steps) when anneal_steps > 0, else
sigma (step = G steps done)."""
from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor

from gankit.augment.base import Augmentation
from gankit.registry import AUGMENTATIONS, NON_NEGATIVE


class InstanceNoise(Augmentation):
    def __init__(self, sigma: float, anneal_steps: int) -> None:
        super().__init__()
        self.sigma, self.anneal_steps = sigma, anneal_steps

    def sigma_at(self, step: int) -> float:
        if self.anneal_steps <= 0:
            return self.sigma
        return self.sigma * max(0.0, 1.0 - step / self.anneal_steps)

    def forward(self, x: Tensor, step: int) -> Tensor:
        sigma = self.sigma_at(step)
        return x + sigma * torch.randn_like(x) if sigma > 0 else x

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, anneal_steps={self.anneal_steps}"


@AUGMENTATIONS.register("noise", "instance noise on real and generated inputs of D, optionally annealed")
def noise(*, sigma: Annotated[float, NON_NEGATIVE] = 0.1,
          anneal_steps: Annotated[int, NON_NEGATIVE] = 0) -> Augmentation:
    return InstanceNoise(sigma, anneal_steps)
