"""What each player minimises: the adversarial loss on D's logits plus weighted method terms.

The training loop asks the ``Objective`` for D's and G's loss in each step and stays ignorant of the method
(the shape of StyleGAN2-ADA's ``training/loss.py``). A method that adds a term (ACGAN's auxiliary
classification, VEEGAN's reconstruction) is a ``Term`` registered in ``gankit.methods``; a term may bring
networks of its own, each trained with D or with G by its own optimiser. A term may also give D extra inputs with
every batch (``Term.d_inputs``, keyword arguments of D's forward): VEEGAN pairs each sample with a code, so its
joint discriminator D(z, x) is called ``D(x, y, code=...)``. The trainer passes them on without knowing what they
are. Regularizers of D (penalties, clipping, noise) stay in regularizers.py.

A term that says ``phase: own`` is not added to D's and G's losses: it is minimised in a step of its own after each
G step (the reference InfoGAN's "Q step"), on fresh latents, by G (``weight``) and D (``d_weight``) together.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, ContextManager, Literal, NamedTuple

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.losses import AdversarialLoss
from gankit.models.conditional import DOutput

Player = Literal["discriminator", "generator"]
TermPhase = Literal["shared", "own"]


class NetworkNeed(NamedTuple):
    """A network a term needs besides G and D: built from ``model.networks.<name>`` with ``role`` and trained in
    ``player``'s phase (with D's or G's steps) by ``optim.networks.<name>`` (default: that player's optimiser)."""

    role: str
    player: Player


class DInputs(NamedTuple):
    """Keyword inputs D receives with each batch besides (x, y), given by a term: ``fake`` with the generated batch,
    ``real`` with the real batch (None in G's phase, which scores generated samples only)."""

    fake: dict[str, Tensor]
    real: dict[str, Tensor] | None = None


class PairCodes(NamedTuple):
    """The code D sees with each sample when it scores (code, sample) pairs: ``fake`` with the generated batch
    (e.g. the z that made it), ``real`` with the real batch (None in G's steps, which score generated samples
    only)."""

    fake: Tensor
    real: Tensor | None = None


class TermValue(NamedTuple):
    """A term's value with named parts logged beside it (``<player>_<term>_<part>``, e.g. InfoGAN's
    ``g_infogan_categorical``); a term may return a plain tensor instead."""

    value: Tensor
    parts: dict[str, Tensor]


def split_value(value: "Tensor | TermValue") -> tuple[Tensor, dict[str, Tensor]]:
    """(value, its parts) of what a term returned."""
    return (value.value, value.parts) if isinstance(value, TermValue) else (value, {})


def logged_values(key: str, value: Tensor, parts: dict[str, Tensor]) -> dict[str, Tensor]:
    """What the logs get of a term's value: ``key`` and ``key_<part>`` for each part, detached."""
    return {key: value.detach(), **{f"{key}_{part}": v.detach() for part, v in parts.items()}}


@dataclass
class StepContext:
    """What a term may look at in one D or G step; outputs are in the graph, in fp32. ``phase`` is "D", "G" or
    "own" (a term's own step); ``d_index`` counts D steps over the run from 0 (None outside D's phase), so a term
    that acts on some D steps only (InfoGAN's d_every) needs no counter of its own. In G's phase
    ``real``/``real_out`` are set only for a loss that compares with real data (``needs_real_in_g``), and
    ``real_out`` is then constant (D is frozen)."""

    fake: Tensor
    fake_y: Tensor | None
    fake_out: DOutput
    z: Tensor
    networks: dict[str, nn.Module]
    real: Tensor | None = None  # D steps (and G steps of a loss that needs_real_in_g)
    real_y: Tensor | None = None
    real_out: DOutput | None = None
    # The run's forward-pass region (bf16 autocast or not), for terms that run networks of their own.
    autocast: Callable[[], ContextManager] = contextlib.nullcontext
    d_inputs: DInputs | None = None  # D's extra inputs with real_out/fake_out (None: D saw the samples alone)
    phase: Literal["D", "G", "own"] = "D"
    d_index: int | None = None
    n_critic: int = 1  # D steps per G step: the last D step of a G step has (d_index + 1) % n_critic == 0


class Term(nn.Module):
    """A weighted method term. ``d_term``/``g_term`` return an unweighted value (or None; a ``TermValue`` to log
    its parts too): G minimises ``weight * value`` and D ``d_weight * value`` on top of the adversarial loss.
    State that must survive a resume lives in buffers.

    ``phase``: "shared" (the term rides on D's and G's steps) or "own" (a step of its own after each G step, where
    ``own_term`` is the value; only terms with ``can_own_phase`` take it)."""

    #: True for a term whose value can be minimised in a step of its own (``own_term``).
    can_own_phase: ClassVar[bool] = False
    #: True for a term that gives D extra inputs with every batch (``d_inputs``), in D's and G's steps.
    #: One such term per run at most.
    adds_d_inputs: ClassVar[bool] = False

    def __init__(self, weight: float, d_weight: float | None = None, phase: TermPhase = "shared") -> None:
        super().__init__()
        self.weight = weight  # G's weight, and D's unless d_weight is given
        self.d_weight = weight if d_weight is None else d_weight
        if phase == "own" and not self.can_own_phase:
            raise ConfigError(f"phase own: {type(self).__name__} has no step of its own; use phase: shared")
        self.phase = phase

    def needs(self) -> dict[str, NetworkNeed]:
        """Extra networks by name (empty for terms that read D's heads)."""
        return {}

    def check(self, networks: dict[str, nn.Module], n_classes: int, where: str) -> None:
        """Raise ConfigError when the built networks or data cannot serve this term."""

    def d_inputs(self, z: Tensor, real: Tensor | None, networks: dict[str, nn.Module],
                 autocast: Callable[[], ContextManager]) -> DInputs:
        """Only for ``adds_d_inputs`` terms: D's extra inputs with a generated batch made from ``z`` and, in D's
        steps, with the ``real`` batch (None in G's steps). Called before D's forward, outside any autocast region."""
        raise NotImplementedError

    def d_term(self, ctx: StepContext) -> "Tensor | TermValue | None":
        return None

    def g_term(self, ctx: StepContext) -> "Tensor | TermValue | None":
        return None

    def own_term(self, ctx: StepContext) -> "Tensor | TermValue":
        """The value minimised in the term's own step (``phase: own``): G and D are both in the graph."""
        raise NotImplementedError


TermFn = Callable[[StepContext], "Tensor | TermValue | None"]


class Objective:
    """The adversarial loss and the terms, with the names under which each value is logged."""

    def __init__(self, loss: AdversarialLoss, terms: list[Term], names: list[str]) -> None:
        self.loss, self.terms, self.names = loss, terms, names
        givers = [name for name, t in zip(names, terms) if t.adds_d_inputs]
        if len(givers) > 1:
            raise ConfigError(f"terms {givers[0]} and {givers[1]} both give D extra inputs; D takes them from one")
        self.input_term = next((t for t in terms if t.adds_d_inputs), None)
        #: (name, term) of the terms with a step of their own, in config order
        self.own_phase = [(name, t) for name, t in zip(names, terms) if t.phase == "own"]

    def d_inputs(self, z: Tensor, real: Tensor | None, networks: dict[str, nn.Module],
                 autocast: Callable[[], ContextManager]) -> DInputs | None:
        """D's extra inputs with the generated batch (from z) and the real batch (D's steps), or None when no term
        gives any (D sees the samples alone)."""
        return None if self.input_term is None else self.input_term.d_inputs(z, real, networks, autocast)

    def d_loss(self, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        assert ctx.real_out is not None
        loss = self.loss.d_loss(ctx.real_out.logit, ctx.fake_out.logit)
        return self._add_terms("d", loss, [(t.d_weight if t.phase == "shared" else 0.0, t.d_term) for t in self.terms],
                               ctx)

    def g_loss(self, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        loss = self.loss.g_loss(ctx.fake_out.logit, ctx.real_out.logit if ctx.real_out is not None else None)
        return self._add_terms("g", loss, [(t.weight if t.phase == "shared" else 0.0, t.g_term) for t in self.terms],
                               ctx)

    def _add_terms(self, player: str, loss: Tensor, weighted: list[tuple[float, TermFn]],
                   ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        """loss + sum of weight * term (terms of weight 0 are not computed), and each value (and part) for the
        logs."""
        logged = {f"{player}_loss": loss.detach()}
        for name, (weight, term) in zip(self.names, weighted):
            returned = term(ctx) if weight > 0 else None
            if returned is not None:
                value, parts = split_value(returned)
                loss = loss + weight * value
                logged.update(logged_values(f"{player}_{name}", value, parts))
        return loss, logged
