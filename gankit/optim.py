"""Optimisers by name, the linear learning-rate decay, and the EMA of G's weights."""
from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Annotated

import torch
from torch import nn

from gankit.registry import FRACTION, NON_NEGATIVE, OPTIMIZERS, POSITIVE

Params = Iterable[nn.Parameter]
Rate = Annotated[float, POSITIVE]
Beta = Annotated[float, FRACTION]


def _fast_path(params: list[nn.Parameter]) -> dict[str, bool]:
    # The fused kernels exist for CPU and CUDA floats and replace dozens of launches per step with one.
    return {"fused": True} if params and all(p.device.type in ("cpu", "cuda") for p in params) else {}


@OPTIMIZERS.register("adam", "Adam (fused kernel)")
def adam(params: Params, *, lr: Rate = 2e-4, betas: tuple[Beta, Beta] = (0.5, 0.999),
         eps: Annotated[float, POSITIVE] = 1e-8, weight_decay: Annotated[float, NON_NEGATIVE] = 0.0) -> torch.optim.Optimizer:
    params = list(params)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, **_fast_path(params))


@OPTIMIZERS.register("rmsprop", "RMSprop (the WGAN paper's optimiser)")
def rmsprop(params: Params, *, lr: Rate = 5e-5, alpha: Annotated[float, FRACTION] = 0.99,
            eps: Annotated[float, POSITIVE] = 1e-8, momentum: Annotated[float, NON_NEGATIVE] = 0.0) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, foreach=True)


@OPTIMIZERS.register("sgd", "plain or momentum SGD")
def sgd(params: Params, *, lr: Rate = 1e-2, momentum: Annotated[float, NON_NEGATIVE] = 0.0) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, foreach=True)


def linear_decay(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """lr_t = lr * (1 - t / total_steps), stepped once per G step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: max(0.0, 1.0 - t / total_steps))


class EMA:
    """Exponential moving average of a model's weights: avg <- decay * avg + (1 - decay) * w.

    One foreach lerp per update (no per-parameter Python loop); buffers (batch-norm statistics,
    spectral-norm vectors) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False).eval()
        self._avg = list(self.model.parameters())
        self._src = list(model.parameters())
        self._avg_buffers = list(self.model.buffers())
        self._src_buffers = list(model.buffers())

    @torch.no_grad()
    def update(self, follow_exactly: bool = False) -> None:
        weight = 1.0 if follow_exactly else 1.0 - self.decay
        torch._foreach_lerp_(self._avg, self._src, weight)
        for avg, src in zip(self._avg_buffers, self._src_buffers):
            avg.copy_(src)
