"""VEEGAN (Srivastava et al. 2017): a reconstructor F: x -> z and a joint discriminator D(z, x).

D tells the generator's pairs (z, G(z)) from the data's pairs (F(x) + noise, x); G and F minimise D's score of
the generator's pairs plus lambda times the reconstruction error of z. In gankit's sign convention (D's logit
is high for the data's pairs, as for real samples in every other loss), with B samples, z in R^d and
e ~ N(0, noise_std^2 I):

* D minimises   1/2 [ mean_i softplus(-D(F(x_i) + e_i, x_i)) + mean_i softplus(D(z_i, G(z_i))) ]   (loss: veegan)
* G minimises   -mean_i D(z_i, G(z_i))  +  lambda * rec                                          (loss: veegan)
* F minimises   lambda * rec (F steps with G, on G's batch; D's steps use F(x) without a gradient)
* rec = 1/(B d) sum_i ||z_i - F(G(z_i))||^2 (``distance: mse``, the reference code's nn.MSELoss), or
  1/B sum_i ||z_i - F(G(z_i))||^2 (``distance: squared_l2``, the paper's d(z, x) = ||z - F(x)||^2).

This is Algorithm 1 of the paper with its D written as D_paper = -D (the paper's D is high on the generator's
pairs) and the reference code's scaling (xyfJASON/GANs-Implementations scripts/train_veegan.py): the two BCE
terms averaged (the paper sums them), means over the batch, and nn.MSELoss's mean over z's coordinates with
lambda_rec = 1. docs/veegan.md lists every difference.

The term pairs D's samples with codes and gives them to D as its extra input ``code`` (``Term.d_inputs``), so
model.discriminator must be a joint model (``joint_mlp``) and model.networks must hold the reconstructor
(``encoder_mlp``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ContextManager, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.losses import AdversarialLoss
from gankit.objective import DInputs, NetworkNeed, PairCodes, StepContext, Term
from gankit.registry import LOSSES, NON_NEGATIVE, TERMS


class VEEGANLoss(AdversarialLoss):
    """D: the GAN loss of the two batches, averaged; G: -E D(z, G(z)) (G lowers the paper's log density ratio
    log q(x, z) / p(x, z), D's raw logit)."""

    name = "veegan"

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return -fake.mean()


@LOSSES.register("veegan", "VEEGAN: D's BCE averaged over its two batches; G minimises -D(z, G(z)), the log ratio")
def veegan_loss() -> AdversarialLoss:
    return VEEGANLoss()


class Reconstruction(Term):
    """VEEGAN's reconstruction term and codes: z with each generated sample, F(x) + noise with each real one."""

    adds_d_inputs = True

    def __init__(self, weight: float, reconstructor: str, noise_std: float, distance: str) -> None:
        super().__init__(weight, d_weight=0.0)  # D's objective has no reconstruction term
        self.reconstructor, self.noise_std, self.distance = reconstructor, noise_std, distance

    def needs(self) -> dict[str, NetworkNeed]:
        return {self.reconstructor: NetworkNeed("reconstructor", "generator")}

    def check(self, networks: dict[str, nn.Module], n_classes: int, where: str) -> None:
        d, f = networks["discriminator"], networks[self.reconstructor]
        key = f"model.networks.{self.reconstructor}"
        if getattr(d, "pack", 1) > 1:
            raise ConfigError(f"{where} (veegan) does not combine with model.pack > 1 (D scores (z, x) pairs)")
        if getattr(d, "code_dim", None) is None:
            raise ConfigError(f"{where} (veegan) pairs samples with codes, but model.discriminator scores samples "
                              "alone: use a joint discriminator D(z, x) (name: joint_mlp)")
        if getattr(f, "code_dim", None) is None:
            raise ConfigError(f"{where} (veegan) reconstructs z with {key}, which does not map samples to codes: "
                              "use name: encoder_mlp")
        for name, net in (("model.discriminator", d), (key, f)):
            if net.code_dim != net.z_dim:
                raise ConfigError(f"{name}.code_dim is {net.code_dim} but VEEGAN's codes are z: it must equal "
                                  f"model.z_dim ({net.z_dim}), or be null")

    def pair_codes(self, z: Tensor, real: Tensor | None, networks: dict[str, nn.Module],
                   autocast: Callable[[], ContextManager]) -> PairCodes:
        if real is None:
            return PairCodes(z)
        with torch.no_grad(), autocast():  # F is trained in G's phase only (Algorithm 1)
            rec = networks[self.reconstructor](real).float()
        if self.noise_std > 0:
            rec = rec + self.noise_std * torch.randn_like(rec)
        return PairCodes(z, rec)

    def d_inputs(self, z: Tensor, real: Tensor | None, networks: dict[str, nn.Module],
                 autocast: Callable[[], ContextManager]) -> DInputs:
        """D(x, y, code=...): z with each generated sample, F(x) + noise with each real one."""
        codes = self.pair_codes(z, real, networks, autocast)
        return DInputs({"code": codes.fake}, None if codes.real is None else {"code": codes.real})

    def g_term(self, ctx: StepContext) -> Tensor:
        with ctx.autocast():
            rec = ctx.networks[self.reconstructor](ctx.fake).float()
        sq = (ctx.z - rec).square()
        return sq.mean() if self.distance == "mse" else sq.sum(dim=1).mean()

    def extra_repr(self) -> str:
        return (f"weight={self.weight}, reconstructor={self.reconstructor}, noise_std={self.noise_std}, "
                f"distance={self.distance}")


@TERMS.register("veegan", "VEEGAN: a reconstructor F: x -> z and codes for a joint D(z, x), Srivastava et al. 2017")
def veegan(*, weight: Annotated[float, NON_NEGATIVE] = 1.0, reconstructor: str = "reconstructor",
           noise_std: Annotated[float, NON_NEGATIVE] = 1.0, distance: Literal["mse", "squared_l2"] = "mse") -> Term:
    """weight: lambda, the weight of the reconstruction error in G's and F's loss.
    reconstructor: the network of model.networks that maps samples to z (an encoder_mlp).
    noise_std: std of the Gaussian noise added to F(x) in the code D sees with a real sample (reference: 1).
    distance: mse = mean over z's coordinates (reference code); squared_l2 = ||z - F(G(z))||^2 (paper)."""
    return Reconstruction(weight, reconstructor, noise_std, distance)
