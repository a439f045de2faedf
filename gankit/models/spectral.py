"""Spectral norm (Miyato et al. 2018) that torch.func.vmap can batch, so that SNGAN seeds stack in a study.

torch's ``parametrizations.spectral_norm`` updates its power-iteration vectors with ``F.normalize(..., out=u)``,
and vmap has no batching rule for ``out=`` ops. ``StackableSpectralNorm`` is torch's parametrization with that
one method written as a normalise followed by an in-place ``copy_`` (which vmap batches): the same arithmetic,
so a network gives torch's outputs and vectors to float rounding (tests/test_models.py), and the state-dict keys
(``parametrizations.weight.original``, ``...weight.0._u`` / ``_v``) are torch's, so checkpoints load either way.
Subclassing torch's private class keeps its init (15 power iterations), its eval-mode behaviour, its weight
reshaping per layer type and its ``right_inverse``: only the loop differs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm


class StackableSpectralNorm(_SpectralNorm):
    @torch.no_grad()
    def _power_method(self, weight_mat: torch.Tensor, n_power_iterations: int) -> None:
        for _ in range(n_power_iterations):
            self._u.copy_(F.normalize(torch.mv(weight_mat, self._v), dim=0, eps=self.eps))
            self._v.copy_(F.normalize(torch.mv(weight_mat.H, self._u), dim=0, eps=self.eps))


def spectral_norm(module: nn.Module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12) -> nn.Module:
    """W / sigma(W) on ``module.name``, one power iteration per training forward, as torch's spectral_norm."""
    weight = getattr(module, name)
    # torch's rule: a transposed convolution's output channels are its weight's dim 1
    dim = 1 if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) else 0
    parametrize.register_parametrization(module, name, StackableSpectralNorm(weight, n_power_iterations, dim, eps))
    return module
