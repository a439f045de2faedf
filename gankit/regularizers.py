"""Regularizers and constraints of the discriminator, as small modules the training loop calls at fixed points.

Each regularizer may hook into two places of a D step (see ``Regularizer``); changes of D's inputs (instance
noise, DiffAugment) are augmentations (gankit/augment/):

* ``penalty(ctx)``       returns an unweighted penalty P; D minimises ``loss + weight * every * P`` on the
                         steps where ``d_step % every == 0`` (lazy regularisation, Karras et al. 2020);
* ``after_d_step(D)``    runs after D's optimiser step (WGAN weight clipping).

State that must survive a resume (RLC's moving averages) lives in registered buffers, so it travels in
``state_dict``. The exact formulas are in docs/regularizers.md.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar, Literal

import torch
from torch import Tensor, nn

from gankit.distributed.collectives import all_mean
from gankit.registry import AT_LEAST_ONE, FRACTION, NON_NEGATIVE, POSITIVE, REGULARIZERS

Critic = Callable[[Tensor], Tensor]


@dataclass
class DStepContext:
    """What a penalty may look at in one D step. ``real_out``/``fake_out`` are D's adversarial outputs, still in
    the graph. In a conditional run ``critic`` is called ``critic(x, y)`` and ``real_y``/``fake_y`` are the labels
    D saw in the loss; a penalty scores its points with the same labels (``scorer``)."""

    critic: Callable[..., Tensor]
    real: Tensor
    fake: Tensor
    real_out: Tensor
    fake_out: Tensor
    real_y: Tensor | None = None
    fake_y: Tensor | None = None

    def scorer(self, y: Tensor | None) -> Critic:
        """x -> D's score of x with labels y (x alone in an unconditional run)."""
        return self.critic if y is None else partial(self.critic, y=y)


PenaltyPrecision = Literal["fp32", "bf16"]


def input_gradient(critic: Critic, x: Tensor, precision: PenaltyPrecision = "fp32") -> Tensor:
    """d sum_i D(x_i) / d x, kept in the graph (create_graph) so the penalty can be minimised through it.

    ``fp32`` (the default) runs D's forward, this backward and the later double backward with autocast off
    (fp64 stays fp64). ``bf16`` runs them under bf16 autocast, as the main D forward does: about twice as fast
    on tensor cores; the layers models keep in fp32 (D's logit layer) stay fp32, and the returned gradient has
    x's dtype either way.
    benchmarks/penalty_precision.py measures what bf16 costs in accuracy (docs/regularizers.md).
    """
    x = x.detach().to(torch.promote_types(x.dtype, torch.float32)).requires_grad_(True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = critic(x)
        (grad,) = torch.autograd.grad(out.float().sum(), x, create_graph=True)
    return grad


def squared_norm(grad: Tensor) -> Tensor:
    """Per-sample squared Euclidean norm over all but the batch dimension (no flatten: a channels_last gradient
    would need a copy)."""
    return grad.square().sum(dim=tuple(range(1, grad.dim())))


def grad_norm(grad: Tensor, eps: float = 1e-12) -> Tensor:
    """Per-sample Euclidean norm; eps keeps its gradient finite where the gradient itself is zero."""
    return (squared_norm(grad) + eps).sqrt()


def uniform_like(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """U[0,1) numbers drawn in fp32 and cast to x's dtype, so an fp64 run draws the same numbers as an fp32 one."""
    return torch.rand(shape, device=x.device).to(x.dtype)


def batch_uniform(x: Tensor) -> Tensor:
    """One U[0,1) number per sample, shaped to broadcast over the sample's dimensions."""
    return uniform_like(x, (x.shape[0],) + (1,) * (x.dim() - 1))


class Regularizer(nn.Module):
    """Base class; every hook defaults to doing nothing. What it declares feeds gankit/compat.py."""

    #: The penalty differentiates D with respect to its input sample (not for a D of (code, sample) pairs).
    uses_input_gradient: ClassVar[bool] = False
    #: State carried across steps (a study cannot share it between stacked seeds).
    stateful: ClassVar[bool] = False

    def __init__(self, weight: float = 0.0, every: int = 1) -> None:
        super().__init__()
        self.weight = weight
        self.every = every

    def is_due(self, d_step: int) -> bool:
        return d_step % self.every == 0

    def penalty(self, ctx: DStepContext) -> Tensor | None:
        return None

    def after_d_step(self, discriminator: nn.Module) -> None:
        pass

    def extra_repr(self) -> str:
        return f"weight={self.weight}, every={self.every}"


class InputGradientPenalty(Regularizer):
    """A penalty on D's input gradient; ``precision`` says in which precision that gradient is computed."""

    uses_input_gradient = True

    def __init__(self, weight: float, every: int, precision: PenaltyPrecision = "fp32") -> None:
        super().__init__(weight, every)
        self.precision = precision

    def input_gradient(self, critic: Critic, x: Tensor) -> Tensor:
        return input_gradient(critic, x, self.precision)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, precision={self.precision}"


class R1(InputGradientPenalty):
    """Mescheder et al. 2018: 1/2 E_real ||grad_x D(x)||^2, so weight * P = gamma/2 E||grad D||^2."""

    def penalty(self, ctx: DStepContext) -> Tensor:
        return 0.5 * squared_norm(self.input_gradient(ctx.scorer(ctx.real_y), ctx.real)).mean()


class R2(InputGradientPenalty):
    """Mescheder et al. 2018: the same penalty at generated samples."""

    def penalty(self, ctx: DStepContext) -> Tensor:
        return 0.5 * squared_norm(self.input_gradient(ctx.scorer(ctx.fake_y), ctx.fake)).mean()


class GradientPenalty(InputGradientPenalty):
    """Gulrajani et al. 2017: E (||grad D(x_hat)|| - g0)^2 on x_hat = a x_real + (1-a) x_fake, a ~ U[0,1].
    A conditional D scores x_hat with the real sample's label."""

    def __init__(self, weight: float, every: int, target: float, precision: PenaltyPrecision = "fp32",
                 alpha: str = "per_sample") -> None:
        super().__init__(weight, every, precision)
        self.target, self.alpha = target, alpha

    def penalty(self, ctx: DStepContext) -> Tensor:
        real, fake = ctx.real.detach(), ctx.fake.detach()
        # per_batch: one a for the whole batch, as xyfJASON/GANs-Implementations' WGANLoss (torch.rand((1,))).
        alpha = batch_uniform(real) if self.alpha == "per_sample" else uniform_like(real, (1,) * real.dim())
        x_hat = alpha * real + (1 - alpha) * fake
        return (grad_norm(self.input_gradient(ctx.scorer(ctx.real_y), x_hat)) - self.target).square().mean()


class DRAGAN(InputGradientPenalty):
    """Kodali et al. 2017: E (||grad D(x_hat)|| - 1)^2 around real data.

    x_hat = x + a * delta, a ~ U[0,1] per sample, delta = c * std(x_batch) * U[0,1)^d as in the authors' code;
    with ``noise_std`` set, delta = noise_std * U[0,1)^d instead (needed where the data has no spread).
    """

    def __init__(self, weight: float, every: int, c: float, noise_std: float | None,
                 precision: PenaltyPrecision = "fp32") -> None:
        super().__init__(weight, every, precision)
        self.c, self.noise_std = c, noise_std

    def penalty(self, ctx: DStepContext) -> Tensor:
        real = ctx.real.detach()
        scale = self.noise_std if self.noise_std is not None else self.c * real.std()
        delta = scale * uniform_like(real, real.shape)
        x_hat = real + batch_uniform(real) * delta
        return (grad_norm(self.input_gradient(ctx.scorer(ctx.real_y), x_hat)) - 1.0).square().mean()


class LeCam(Regularizer):
    """RLC, Tseng et al. 2021: E (D(x) - a_F)^2 + E (D(G(z)) - a_R)^2 with a_R, a_F moving averages of
    D's mean output on real and generated batches (decay ``decay``, started at the first batch)."""

    stateful = True

    def __init__(self, weight: float, every: int, decay: float) -> None:
        super().__init__(weight, every)
        self.decay = decay
        self.register_buffer("anchor_real", torch.zeros(()))
        self.register_buffer("anchor_fake", torch.zeros(()))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def penalty(self, ctx: DStepContext) -> Tensor:
        # Data-parallel runs average the batch means over the ranks: the anchors follow the global batch, as in one
        # process, and stay equal on every rank.
        means = all_mean(torch.stack([ctx.real_out.detach().float().mean(), ctx.fake_out.detach().float().mean()]))
        real_mean, fake_mean = means[0], means[1]
        # Update the anchors first (as the authors' code does); the first batch seeds them. torch.where keeps
        # this free of host syncs.
        for anchor, batch_mean in ((self.anchor_real, real_mean), (self.anchor_fake, fake_mean)):
            anchor.copy_(torch.where(self.started, torch.lerp(anchor, batch_mean, 1 - self.decay), batch_mean))
        self.started.fill_(True)
        anchor_real, anchor_fake = self.anchor_real.clone(), self.anchor_fake.clone()
        return (ctx.real_out - anchor_fake).square().mean() + (ctx.fake_out - anchor_real).square().mean()


class WeightClip(Regularizer):
    """Arjovsky et al. 2017: after every D step, clamp each of D's parameters to [-clip, clip]."""

    def __init__(self, clip: float) -> None:
        super().__init__()
        self.clip = clip

    @torch.no_grad()
    def after_d_step(self, discriminator: nn.Module) -> None:
        params = [p for p in discriminator.parameters()]
        torch._foreach_clamp_min_(params, -self.clip)
        torch._foreach_clamp_max_(params, self.clip)

    def extra_repr(self) -> str:
        return f"clip={self.clip}"


Weight = Annotated[float, NON_NEGATIVE]
Every = Annotated[int, AT_LEAST_ONE]


@REGULARIZERS.register("r1", "R1: gamma/2 E||grad D(x_real)||^2, Mescheder et al. 2018")
def r1(*, weight: Weight = 10.0, every: Every = 1, precision: PenaltyPrecision = "fp32") -> Regularizer:
    return R1(weight, every, precision)


@REGULARIZERS.register("r2", "R2: gamma/2 E||grad D(x_fake)||^2, Mescheder et al. 2018")
def r2(*, weight: Weight = 10.0, every: Every = 1, precision: PenaltyPrecision = "fp32") -> Regularizer:
    return R2(weight, every, precision)


@REGULARIZERS.register("gp", "WGAN-GP: lambda E(||grad D(x_hat)|| - g0)^2 on interpolates, Gulrajani et al. 2017")
def gp(*, weight: Weight = 10.0, every: Every = 1, target: Annotated[float, NON_NEGATIVE] = 1.0,
       precision: PenaltyPrecision = "fp32", alpha: Literal["per_sample", "per_batch"] = "per_sample") -> Regularizer:
    """alpha: the interpolation weight a: one per sample (Gulrajani et al.) or one per batch (the reference code)."""
    return GradientPenalty(weight, every, target, precision, alpha)


@REGULARIZERS.register("dragan", "DRAGAN: lambda E(||grad D(x + delta)|| - 1)^2 near real data, Kodali et al. 2017")
def dragan(*, weight: Weight = 10.0, every: Every = 1, c: Annotated[float, POSITIVE] = 0.5,
           noise_std: Annotated[float, POSITIVE] | None = None, precision: PenaltyPrecision = "fp32") -> Regularizer:
    return DRAGAN(weight, every, c, noise_std, precision)


@REGULARIZERS.register("rlc", "RLC (LeCam): distance of D's outputs to moving-average anchors, Tseng et al. 2021")
def rlc(*, weight: Weight = 0.1, every: Every = 1, decay: Annotated[float, FRACTION] = 0.99) -> Regularizer:
    return LeCam(weight, every, decay)


@REGULARIZERS.register("clip", "WGAN weight clipping of D's parameters to [-clip, clip], Arjovsky et al. 2017")
def clip(*, clip: Annotated[float, POSITIVE] = 0.01) -> Regularizer:
    return WeightClip(clip)
