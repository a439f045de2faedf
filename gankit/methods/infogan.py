"""InfoGAN's mutual-information term (Chen et al. 2016); the traversal figure of a trained run is gankit/traversal.py.

G receives ``z = [noise, one_hot(c_1), ..., c_cont]`` (``model.codes``, gankit.prior); Q, a head on D's trunk
(``model.discriminator.q_head: true``), reads a sample x and outputs, for each categorical code c_j of K_j values,
logits l_j(x), and for the continuous codes their means mu(x) (Q(c | x) is a Gaussian of fixed std sigma). On a
batch of B generated samples x_i = G(z_i), with L = ``categorical_weight`` and M = ``continuous_weight``:

    value = L * sum_j CE_j + M * C
    CE_j  = 1/B sum_i -log softmax(l_j(x_i))[c_ij]                                         (cross-entropy)
    C     = 1/B sum_i sum_d [ (c_id - mu_d(x_i))^2 / (2 sigma^2) + log sigma + 1/2 log(2 pi) ]
            (``continuous_loss: nll``: the Gaussian negative log-likelihood, summed over the codes as the paper's
            code, openai/InfoGAN, does with fixed std 1)
    C     = 1/(B n) sum_i sum_d (c_id - mu_d(x_i))^2
            (``continuous_loss: mse``: torch's MSELoss, the mean over batch and codes, as the reference
            xyfJASON/GANs-Implementations does)

value is -L_I up to the constant H(c) (L_I(G, Q) = H(c) - value when L = M = 1 and the loss is nll): minimising it
maximises the variational lower bound on I(c; G(z, c)).

* G minimises ``weight * value`` on its own step's samples (D's weights are frozen there, so only G learns from it);
* D minimises ``d_weight * value`` on the samples of its step: this trains Q's head and, with ``train_trunk:
  true`` (the paper and the reference), D's trunk; with ``train_trunk: false`` Q reads D's features detached, so
  the term in D's step reaches the Q head only;
* ``d_every: k`` computes D's part on one D step in k (the k-th, 2k-th, ... D step of the run, by the trainer's
  D-step index in the context); ``d_every: null`` means once per G step (k = train.n_critic): Q learns once per G
  step, on the last D step before it;
* ``phase: own`` takes the term out of D's and G's steps and minimises it in a step of its own after each G step,
  as the reference's ``run_step_Q``: fresh latents, one backward through G and D, G steps on ``weight * value`` and
  D (trunk and Q) on ``d_weight * value``.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import ConfigError, ParamError
from gankit.objective import StepContext, Term, TermPhase, TermValue
from gankit.prior import CodeSpec
from gankit.registry import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, TERMS

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def q_head_of(discriminator: nn.Module) -> nn.Module | None:
    return getattr(discriminator, "q_head", None)


def categorical_cross_entropy(q: Tensor, codes: CodeSpec, indices: list[Tensor]) -> Tensor:
    """sum over the categorical codes of the batch-mean cross-entropy of Q's logits (q holds every code's
    logits, then the continuous means)."""
    total, at = q.new_zeros(()), 0
    for k, target in zip(codes.categorical, indices):
        total = total + F.cross_entropy(q[:, at:at + k], target)
        at += k
    return total


def continuous_loss(mu: Tensor, c: Tensor, kind: str, sigma: float) -> Tensor:
    """Gaussian NLL with fixed sigma (summed over codes, mean over the batch) or the MSE (mean over both)."""
    if kind == "mse":
        return (mu - c).square().mean()
    nll = (c - mu).square() / (2 * sigma**2) + math.log(sigma) + HALF_LOG_2PI
    return nll.sum(1).mean()


class MutualInformation(Term):
    can_own_phase = True

    def __init__(self, weight: float, d_weight: float | None, categorical_weight: float, continuous_weight: float,
                 continuous: str, sigma: float, train_trunk: bool, d_every: int | None,
                 phase: TermPhase = "shared") -> None:
        super().__init__(weight, d_weight, phase)
        self.categorical_weight, self.continuous_weight = categorical_weight, continuous_weight
        self.continuous, self.sigma, self.train_trunk, self.d_every = continuous, sigma, train_trunk, d_every
        self.codes = CodeSpec()

    def check(self, networks: dict[str, nn.Module], n_classes: int, where: str) -> None:
        head = q_head_of(networks["discriminator"])
        if head is None:
            raise ConfigError(f"{where} (infogan) reads Q from model.discriminator, which has no Q head: set "
                              "model.discriminator.q_head: true and give model.codes")
        self.codes = head.codes

    def value(self, q: Tensor, z: Tensor) -> Tensor:
        """L * sum_j CE_j + M * C for Q's outputs q on samples generated from z (codes last in z)."""
        return self.parts(q, z).value

    def parts(self, q: Tensor, z: Tensor) -> TermValue:
        """The value, with its unweighted parts: ``categorical`` (sum_j CE_j) and ``continuous`` (C)."""
        indices, c = self.codes.split(z)
        total, parts = q.new_zeros(()), {}
        if self.codes.categorical and self.categorical_weight > 0:
            parts["categorical"] = categorical_cross_entropy(q, self.codes, indices)
            total = total + self.categorical_weight * parts["categorical"]
        if self.codes.continuous and self.continuous_weight > 0:
            mu = q[:, sum(self.codes.categorical):]
            parts["continuous"] = continuous_loss(mu, c.to(mu.dtype), self.continuous, self.sigma)
            total = total + self.continuous_weight * parts["continuous"]
        return TermValue(total, {k: v.detach() for k, v in parts.items()})

    def d_term(self, ctx: StepContext) -> TermValue | None:
        # The d_every-th, 2 d_every-th, ... D step of the run (d_index counts from 0); d_every null: the last D step
        # of each G step, i.e. every n_critic-th.
        every = self.d_every or ctx.n_critic
        if ctx.d_index is not None and (ctx.d_index + 1) % every:
            return None
        if self.train_trunk:
            q = ctx.fake_out.heads["q"]
        else:  # Q's head on D's features cut from the trunk: the term in D's step trains the head alone
            head = q_head_of(ctx.networks["discriminator"])
            q = head(ctx.fake_out.heads["q_features"].detach()).float()
        return self.parts(q, ctx.z)

    def g_term(self, ctx: StepContext) -> TermValue:
        return self.parts(ctx.fake_out.heads["q"], ctx.z)

    own_term = g_term  # the reference's Q step minimises what G's step adds: Q's loss on G's samples

    def get_extra_state(self) -> dict[str, int]:
        return {}  # kept so that checkpoints written before the step index moved into the context still load

    def set_extra_state(self, state: dict[str, int]) -> None:
        """Older checkpoints carry a D-step counter; the trainer's step index replaces it."""

    def extra_repr(self) -> str:
        return (f"weight={self.weight}, d_weight={self.d_weight}, categorical_weight={self.categorical_weight}, "
                f"continuous_weight={self.continuous_weight}, continuous_loss={self.continuous}, sigma={self.sigma}, "
                f"train_trunk={self.train_trunk}, d_every={self.d_every}, phase={self.phase}")


@TERMS.register("infogan", "InfoGAN mutual information: Q's cross-entropy on the categorical codes plus a fixed-sigma "
                           "Gaussian NLL (or MSE) on the continuous codes, Chen et al. 2016")
def infogan(*, weight: Annotated[float, NON_NEGATIVE] = 1.0, d_weight: Annotated[float, NON_NEGATIVE] | None = None,
            categorical_weight: Annotated[float, NON_NEGATIVE] = 1.0,
            continuous_weight: Annotated[float, NON_NEGATIVE] = 1.0,
            continuous_loss: Literal["nll", "mse"] = "nll", sigma: Annotated[float, POSITIVE] = 1.0,
            train_trunk: bool = True, d_every: Annotated[int, AT_LEAST_ONE] | None = 1,
            phase: TermPhase = "shared") -> Term:
    """weight: of the term in G's loss, and in D's unless d_weight is given (lambda of the paper).
    categorical_weight, continuous_weight: lambda of the categorical and of the continuous codes, inside the term.
    continuous_loss: nll = Gaussian negative log-likelihood with fixed std sigma, summed over the codes; mse = mean
        squared error over batch and codes (the reference's nn.MSELoss).
    train_trunk: the term in D's step trains D's trunk too (true: paper and reference); false: the Q head only.
    d_every: D's part on one D step in d_every; null: once per G step (on its last D step, whatever
        train.n_critic is).
    phase: shared = the term rides on D's and G's steps; own = a step of its own after each G step (the reference's
        Q step), where d_every and train_trunk have no meaning (leave them at their defaults)."""
    if phase == "own" and d_every != 1:
        raise ParamError("d_every", "applies to D's steps; with phase: own the term has a step of its own: remove it")
    if phase == "own" and not train_trunk:
        raise ParamError("train_trunk", "false cannot apply in the term's own step, where G learns through D's trunk; "
                                        "remove it or use phase: shared")
    return MutualInformation(weight, d_weight, categorical_weight, continuous_weight, continuous_loss, sigma,
                             train_trunk, d_every, phase)
