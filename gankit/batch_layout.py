"""How the samples of one D call are laid out in rows, so that real and generated batches can share a call.

A plain run joins two batches as [a; b] (rows of a, then rows of b). A seed stack (study/stack.py) owns rows
s*B .. s*B + B - 1 of every batch for seed s, so it joins per seed: [a_0; b_0; a_1; b_1; ...]. The trainer
joins and splits through this object only, so one D call on [real; fake] works in both, and each seed's
network sees exactly the batch its own run would (which matters for D's state: a spectral norm's power
iteration runs once per call).
"""
from __future__ import annotations

import torch
from torch import Tensor


class RowLayout:
    """[a; b] along the rows."""

    def join(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.cat([a, b])

    def split(self, t: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """The first n rows (from a) and the rest (from b)."""
        return t[:n], t[n:]


class SeedLayout(RowLayout):
    """[a_s; b_s] for each of n_seeds seeds in turn; ``n`` in ``split`` counts a's rows over all seeds."""

    def __init__(self, n_seeds: int) -> None:
        self.n_seeds = n_seeds

    def _grouped(self, t: Tensor) -> Tensor:
        return t.reshape(self.n_seeds, t.shape[0] // self.n_seeds, *t.shape[1:])

    def join(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.cat([self._grouped(a), self._grouped(b)], dim=1).flatten(0, 1)

    def split(self, t: Tensor, n: int) -> tuple[Tensor, Tensor]:
        g, k = self._grouped(t), n // self.n_seeds
        return g[:, :k].flatten(0, 1), g[:, k:].flatten(0, 1)
