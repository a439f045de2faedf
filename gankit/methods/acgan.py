"""ACGAN's auxiliary classification (Odena et al. 2017) as an objective term.

D (or a separate classifier network) predicts the class of its input. With class logits c(x) and cross-entropy
CE:

* ``variant: reference`` (xyfJASON/GANs-Implementations and StudioGAN): D adds CE(c(x_real), y_real) and G adds
  CE(c(G(z, y)), y);
* ``variant: paper`` (Odena et al. 2017, L_C = log P(C=c | X_real) + log P(C=c | X_fake), maximised by both):
  D adds CE(c(x_real), y_real) + CE(c(G(z, y)), y); G adds CE(c(G(z, y)), y).

Each is multiplied by the term's weight (1 in both references; ``d_weight`` sets D's separately). The class logits come from D's class head
(``class_head: true`` on the discriminator), or from ``classifier: NAME``, a network of ``model.networks``
trained with D's steps.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models.conditional import DOutput, as_output
from gankit.objective import NetworkNeed, StepContext, Term
from gankit.registry import NON_NEGATIVE, TERMS


def has_class_head(model: nn.Module) -> bool:
    return getattr(model, "class_head", None) is not None


class AuxiliaryClassification(Term):
    def __init__(self, weight: float, d_weight: float | None, variant: str, classifier: str | None) -> None:
        super().__init__(weight, d_weight)
        self.variant, self.classifier = variant, classifier

    def needs(self) -> dict[str, NetworkNeed]:
        return {self.classifier: NetworkNeed("discriminator", "discriminator")} if self.classifier else {}

    def check(self, networks: dict[str, nn.Module], n_classes: int, where: str) -> None:
        if n_classes < 1:
            raise ConfigError(f"{where} (aux_class) needs class labels: set model.conditional: true on labelled data")
        source = self.classifier or "discriminator"
        if not has_class_head(networks[source]):
            key = f"model.networks.{source}" if self.classifier else "model.discriminator"
            raise ConfigError(f"{where} (aux_class) reads class logits from {key}, which has none: set "
                              f"{key}.class_head: true")

    def _logits(self, ctx: StepContext, x: Tensor, out: DOutput | None) -> Tensor:
        if self.classifier is None:
            assert out is not None
            return out.heads["class"]
        with ctx.autocast():
            return as_output(ctx.networks[self.classifier](x)).heads["class"].float()

    def d_term(self, ctx: StepContext) -> Tensor:
        assert ctx.real is not None and ctx.real_y is not None and ctx.fake_y is not None
        loss = F.cross_entropy(self._logits(ctx, ctx.real, ctx.real_out), ctx.real_y)
        if self.variant == "paper":
            loss = loss + F.cross_entropy(self._logits(ctx, ctx.fake.detach(), ctx.fake_out), ctx.fake_y)
        return loss

    def g_term(self, ctx: StepContext) -> Tensor:
        assert ctx.fake_y is not None
        return F.cross_entropy(self._logits(ctx, ctx.fake, ctx.fake_out), ctx.fake_y)

    def extra_repr(self) -> str:
        return f"weight={self.weight}, d_weight={self.d_weight}, variant={self.variant}, classifier={self.classifier}"


@TERMS.register("aux_class", "ACGAN auxiliary classification: cross-entropy of class logits, Odena et al. 2017")
def aux_class(*, weight: Annotated[float, NON_NEGATIVE] = 1.0, d_weight: Annotated[float, NON_NEGATIVE] | None = None,
              variant: Literal["reference", "paper"] = "reference", classifier: str | None = None) -> Term:
    """weight: of the term in G's loss, and in D's unless d_weight is given.
    variant: reference = D's term on real samples only; paper = on real and generated samples.
    classifier: name of a network in model.networks that gives the class logits instead of D's class head."""
    return AuxiliaryClassification(weight, d_weight, variant, classifier)
