"""What each player minimises: the adversarial loss on D's logits plus weighted method terms.

The training loop asks the ``Objective`` for D's and G's loss in each step and stays ignorant of the method
(the shape of StyleGAN2-ADA's ``training/loss.py``). A method that adds a term (ACGAN's auxiliary
classification now; InfoGAN's mutual information and VEEGAN's reconstruction next) is a ``Term`` registered in
``gankit.methods``; a term may bring networks of its own, each trained with D or with G by its own optimiser.
Regularizers of D (penalties, clipping, noise) stay in regularizers.py.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import ContextManager, Literal, NamedTuple

from torch import Tensor, nn

from gankit.losses import AdversarialLoss
from gankit.models.conditional import DOutput

Player = Literal["discriminator", "generator"]


class NetworkNeed(NamedTuple):
    """A network a term needs besides G and D: built from ``model.networks.<name>`` with ``role`` and trained in
    ``player``'s phase (with D's or G's steps) by ``optim.networks.<name>`` (default: that player's optimiser)."""

    role: str
    player: Player


@dataclass
class StepContext:
    """What a term may look at in one D or G step; outputs are in the graph, in fp32."""

    fake: Tensor
    fake_y: Tensor | None
    fake_out: DOutput
    z: Tensor
    networks: dict[str, nn.Module]
    real: Tensor | None = None  # D steps only
    real_y: Tensor | None = None
    real_out: DOutput | None = None
    # The run's forward-pass region (bf16 autocast or not), for terms that run networks of their own.
    autocast: Callable[[], ContextManager] = contextlib.nullcontext


class Term(nn.Module):
    """A weighted method term. ``d_term``/``g_term`` return an unweighted value (or None): G minimises
    ``weight * value`` and D ``d_weight * value`` on top of the adversarial loss. State that must survive a
    resume lives in buffers."""

    def __init__(self, weight: float, d_weight: float | None = None) -> None:
        super().__init__()
        self.weight = weight  # G's weight, and D's unless d_weight is given
        self.d_weight = weight if d_weight is None else d_weight

    def needs(self) -> dict[str, NetworkNeed]:
        """Extra networks by name (empty for terms that read D's heads)."""
        return {}

    def check(self, networks: dict[str, nn.Module], n_classes: int, where: str) -> None:
        """Raise ConfigError when the built networks or data cannot serve this term."""

    def d_term(self, ctx: StepContext) -> Tensor | None:
        return None

    def g_term(self, ctx: StepContext) -> Tensor | None:
        return None


TermFn = Callable[[StepContext], "Tensor | None"]


class Objective:
    """The adversarial loss and the terms, with the names under which each value is logged."""

    def __init__(self, loss: AdversarialLoss, terms: list[Term], names: list[str]) -> None:
        self.loss, self.terms, self.names = loss, terms, names

    def d_loss(self, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        assert ctx.real_out is not None
        loss = self.loss.d_loss(ctx.real_out.logit, ctx.fake_out.logit)
        return self._add_terms("d", loss, [(t.d_weight, t.d_term) for t in self.terms], ctx)

    def g_loss(self, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        loss = self.loss.g_loss(ctx.fake_out.logit)
        return self._add_terms("g", loss, [(t.weight, t.g_term) for t in self.terms], ctx)

    def _add_terms(self, player: str, loss: Tensor, weighted: list[tuple[float, TermFn]],
                   ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        """loss + sum of weight * term (terms of weight 0 are not computed), and each value for the logs."""
        logged = {f"{player}_loss": loss.detach()}
        for name, (weight, term) in zip(self.names, weighted):
            value = term(ctx) if weight > 0 else None
            if value is not None:
                loss = loss + weight * value
                logged[f"{player}_{name}"] = value.detach()
        return loss, logged
