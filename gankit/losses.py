"""Adversarial losses on the discriminator's raw outputs (logits for the GAN family, scores otherwise).

Each loss is a small object with two methods:

* ``d_loss(real, fake)``: what D minimises, given D's outputs on a real and a generated batch;
* ``g_loss(fake, real)``: what G minimises, given D's outputs on a generated batch and, for a loss that declares
  ``needs_real_in_g`` (the relativistic ones), on a real batch of G's phase (None otherwise: the trainer then
  draws no real batch in G's phase, so the other losses' random streams are unchanged).

Both reduce with a mean over the batch. The exact formulas are in docs/losses.md; softplus keeps the
log-sigmoid terms stable for large logits (log sigmoid(t) = -softplus(-t)).
"""
from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from gankit.registry import LOSSES


class AdversarialLoss:
    """Base class: a loss is a pair (D side, G side) of mean-reduced functions of D's outputs."""

    name = "base"
    #: G's phase needs D's outputs on a real batch (relativistic losses): the trainer passes them as ``real``.
    needs_real_in_g: ClassVar[bool] = False
    #: The loss couples the samples of a batch through batch means (RaGAN): seeds cannot share one batch.
    batch_coupled: ClassVar[bool] = False

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MinimaxLoss(AdversarialLoss):
    """Goodfellow et al. 2014: D maximises log D(x) + log(1 - D(G(z))); G minimises log(1 - D(G(z)))."""

    name = "gan"

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        # log(1 - sigmoid(t)) = -softplus(t): saturates when D rejects the fakes confidently.
        return -F.softplus(fake).mean()


class NonSaturatingLoss(MinimaxLoss):
    """Same D loss; G maximises log D(G(z)) instead (the 'non-saturating' heuristic)."""

    name = "ns"

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return F.softplus(-fake).mean()


class WassersteinLoss(AdversarialLoss):
    """Arjovsky et al. 2017: the critic maximises E D(x) - E D(G(z)); needs a Lipschitz constraint."""

    name = "wgan"

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return fake.mean() - real.mean()

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return -fake.mean()


class LeastSquaresLoss(AdversarialLoss):
    """Mao et al. 2017, 0-1 coding: D pushes real to b=1 and fake to a=0; G pushes fake to c=1."""

    name = "lsgan"

    def __init__(self, real_target: float = 1.0, fake_target: float = 0.0, g_target: float = 1.0) -> None:
        self.real_target, self.fake_target, self.g_target = real_target, fake_target, g_target

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * ((real - self.real_target).square().mean() + (fake - self.fake_target).square().mean())

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return 0.5 * (fake - self.g_target).square().mean()

    def __repr__(self) -> str:
        return f"LeastSquaresLoss(a={self.fake_target}, b={self.real_target}, c={self.g_target})"


class HingeLoss(AdversarialLoss):
    """Lim & Ye 2017 / Miyato et al. 2018: D minimises relu(1 - D(x)) + relu(1 + D(G(z))); G minimises -D(G(z))."""

    name = "hinge"

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return -fake.mean()


class RelativisticPairingLoss(AdversarialLoss):
    """RpGAN, Huang et al. 2024 (R3GAN; Jolicoeur-Martineau 2018's RSGAN): each real sample is paired with one
    generated sample, and each player wants its own sample to score higher than the other's:
    D minimises E softplus(-(D(x_i) - D(G(z_i)))), G minimises E softplus(-(D(G(z_i)) - D(x_i)))."""

    name = "rpgan"
    needs_real_in_g = True

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(fake - real).mean()

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        assert real is not None, "rpgan's G loss needs D's outputs on a real batch"
        return F.softplus(real - fake).mean()


class RelativisticAverageLoss(AdversarialLoss):
    """RaGAN, Jolicoeur-Martineau 2018, eq. (5)-(6) with f1(y) = f2(-y) = -log sigmoid(y) = softplus(-y): each
    sample is compared with the mean score of the other batch.
    D minimises E_x softplus(-(D(x) - E D(G(z)))) + E_z softplus(D(G(z)) - E D(x));
    G minimises E_z softplus(-(D(G(z)) - E D(x))) + E_x softplus(D(x) - E D(G(z)))."""

    name = "ragan"
    needs_real_in_g = True
    batch_coupled = True

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean()

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        assert real is not None, "ragan's G loss needs D's outputs on a real batch"
        return F.softplus(-(fake - real.mean())).mean() + F.softplus(real - fake.mean()).mean()


@LOSSES.register("gan", "minimax GAN (saturating G loss), Goodfellow et al. 2014")
def gan() -> AdversarialLoss:
    return MinimaxLoss()


@LOSSES.register("ns", "non-saturating GAN: G minimises -log D(G(z))")
def ns() -> AdversarialLoss:
    return NonSaturatingLoss()


@LOSSES.register("wgan", "Wasserstein critic loss (pair with clip or gp), Arjovsky et al. 2017")
def wgan() -> AdversarialLoss:
    return WassersteinLoss()


@LOSSES.register("lsgan", "least squares GAN, Mao et al. 2017 (targets a=0, b=1, c=1)")
def lsgan(*, real_target: float = 1.0, fake_target: float = 0.0, g_target: float = 1.0) -> AdversarialLoss:
    return LeastSquaresLoss(real_target, fake_target, g_target)


@LOSSES.register("hinge", "hinge loss, Lim & Ye 2017, Miyato et al. 2018")
def hinge() -> AdversarialLoss:
    return HingeLoss()



@LOSSES.register("rpgan", "relativistic pairing GAN (RpGAN), Huang et al. 2024 (R3GAN); pair with r1 and r2")
def rpgan() -> AdversarialLoss:
    return RelativisticPairingLoss()


@LOSSES.register("ragan", "relativistic average GAN (RaGAN), Jolicoeur-Martineau 2018")
def ragan() -> AdversarialLoss:
    return RelativisticAverageLoss()
