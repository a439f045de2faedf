"""Conditioning on class labels, shared by every model: D's structured output, one-hot codes and label planes,
conditional batch norm (de Vries et al. 2017), the projection term (Miyato & Koyama 2018), a class head
(Odena et al. 2017) and InfoGAN's Q head (Chen et al. 2016).

Contract of every model (see gankit.models):

* a generator is called ``G(z, y=None)``: ``y`` holds class indices [B] when the run is conditional;
* a discriminator is called ``D(x, y=None)`` and returns either its adversarial score [B] (a tensor) or a
  ``DOutput`` when it has more heads; the engine reads both through ``as_output``.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import ParamError
from gankit.batch_layout import RowLayout
from gankit.models.layers import FP32Linear
from gankit.prior import CodeSpec


class DOutput(NamedTuple):
    """What a discriminator says about a batch: the adversarial score (logit) of each sample, always, and named
    extra heads, e.g. ``heads["class"]``: class logits [B, K] of an ACGAN discriminator; ``heads["q"]``: InfoGAN's
    Q outputs [B, codes.dim] and ``heads["q_features"]``: the features Q read (D's last hidden layer)."""

    logit: Tensor
    heads: dict[str, Tensor]

    def float(self) -> "DOutput":
        return DOutput(self.logit.float(), {k: v.float() for k, v in self.heads.items()})

    def split(self, n: int, layout: "RowLayout | None" = None) -> tuple["DOutput", "DOutput"]:
        """The first n samples and the rest (D ran on real and generated samples together, joined by ``layout``;
        default: [first; rest] along the rows)."""
        layout = layout or RowLayout()
        parts = {k: layout.split(v, n) for k, v in self.heads.items()}
        first, rest = layout.split(self.logit, n)
        return DOutput(first, {k: p[0] for k, p in parts.items()}), DOutput(rest, {k: p[1] for k, p in parts.items()})


def as_output(out: Tensor | DOutput) -> DOutput:
    """A discriminator's result as a DOutput (a plain tensor is the logit alone)."""
    return out if isinstance(out, DOutput) else DOutput(out, {})


def one_hot(y: Tensor, n_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return F.one_hot(y.long(), n_classes).to(dtype)


def label_planes(y: Tensor, n_classes: int, like: Tensor) -> Tensor:
    """One-hot y as n_classes constant planes of the image's size, in its dtype and memory format (the reference
    CGAN's D concatenates them to the image channels)."""
    b, _, h, w = like.shape
    planes = one_hot(y, n_classes, like.dtype).view(b, n_classes, 1, 1).expand(b, n_classes, h, w)
    nhwc = like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous()
    return planes.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)


GCondition = Literal["auto", "none", "concat", "cbn"]
DCondition = Literal["auto", "none", "concat", "projection"]


def require_labels(n_classes: int, param: str, what: str) -> None:
    if n_classes < 1:
        raise ParamError(param, f"is {what}, which needs class labels: set model.conditional: true (on labelled "
                                "data)")


def resolve_condition(model: str, role: str, condition: str, n_classes: int, class_head: bool, *,
                      auto: dict[str, str], allowed: dict[str, tuple[str, ...]], batch_norm: bool = True) -> str:
    """Check a model's ``condition`` and ``class_head`` keys and resolve ``auto``: none in an unconditional run or
    for a D with a class head (ACGAN's D sees the image alone), else ``auto[role]``. ``allowed`` lists the
    conditionings each role of this model takes; cbn needs batch norm. Every problem is a ParamError."""
    if class_head:
        if role != "discriminator":
            raise ParamError("class_head", "is a discriminator option (ACGAN)")
        require_labels(n_classes, "class_head", "true")
    if condition == "auto":
        return "none" if not n_classes or (role == "discriminator" and class_head) else auto[role]
    if condition != "none":
        require_labels(n_classes, "condition", condition)
    if condition not in allowed[role]:
        takes = "; ".join(f"the {r} takes {' or '.join(c for c in a if c != 'none')}" for r, a in allowed.items())
        raise ParamError("condition", f"'{condition}' is not a {model} {role} conditioning; {takes}")
    if condition == "cbn" and not batch_norm:
        raise ParamError("condition", "is cbn (conditional batch norm), which needs batch_norm: true")
    return condition


def discriminator_output(logit: Tensor, features: Tensor, y: Tensor | None, projection: "ProjectionHead | None",
                         head: nn.Module | None, q_head: "QHead | None" = None) -> Tensor | DOutput:
    """D's result from its unconditional logit psi(phi(x)) and features phi(x): plus the projection term when D
    has one, and as a DOutput with the class logits when D has a class head and Q's outputs when it has a Q head."""
    if projection is not None:
        logit = logit + projection(features, y)
    heads = {} if head is None else {"class": head(features)}
    heads.update(q_outputs(q_head, features))
    return DOutput(logit, heads) if heads else logit


class QHead(nn.Module):
    """InfoGAN's recognition network Q, sharing D's trunk: from D's last hidden features (flattened; for a conv D
    the whole last map, like the reference's 4x4 convolution head) to the logits of each categorical code, then
    the mean of each continuous code (Q(c | x) is a Gaussian of fixed std; see gankit.methods.infogan). The output
    layer computes in fp32. ``hidden`` > 0 puts one hidden layer in between: linear, batch norm, LeakyReLU(0.2)
    (the paper's FC 128 on MNIST)."""

    def __init__(self, features: int, codes: CodeSpec, hidden: int = 0, leaky_slope: float = 0.2,
                 hidden_bias: bool = False, batch_norm: bool = True) -> None:
        super().__init__()
        self.codes = codes
        layers: list[nn.Module] = []
        if hidden:  # hidden_bias: the InfoGAN code's FC layers keep a bias before the batch norm
            layers += [nn.Linear(features, hidden, bias=hidden_bias or not batch_norm),
                       nn.BatchNorm1d(hidden) if batch_norm else nn.Identity(), nn.LeakyReLU(leaky_slope)]
        layers.append(FP32Linear(hidden or features, codes.dim))
        self.net = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features.flatten(1))

    def extra_repr(self) -> str:
        return (f"categorical={list(self.codes.categorical)}, continuous={self.codes.continuous}")


def q_outputs(q_head: QHead | None, features: Tensor) -> dict[str, Tensor]:
    """The heads a Q head adds to D's output: Q's outputs and the features it read (a term that must not train
    D's trunk reruns the head on detached features)."""
    return {} if q_head is None else {"q": q_head(features), "q_features": features}


def check_q_head(role: str, q_head: bool, q_hidden: int) -> None:
    if q_head and role != "discriminator":
        raise ParamError("q_head", "is a discriminator option (InfoGAN)")
    if q_hidden and not q_head:
        raise ParamError("q_hidden", "needs q_head: true")


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine part, followed by a per-class scale and shift:
    y = gamma[c] * BN(x) + beta[c], with gamma initialised to 1 and beta to 0, so that at initialisation it
    equals a plain batch norm (whose affine part starts at 1 and 0). ``dims`` is 1 (features) or 2 (images)."""

    def __init__(self, features: int, n_classes: int, dims: int = 2, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        self.norm = norm(features, eps=eps, momentum=momentum, affine=False)
        self.scale = nn.Embedding(n_classes, features)
        self.shift = nn.Embedding(n_classes, features)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)
        self.dims = dims

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        shape = (x.shape[0], -1) + (1,) * (x.dim() - 2)
        h = self.norm(x)
        # In h's dtype: under bf16 autocast fp32 embeddings would promote everything after this layer to fp32.
        return h * self.scale(y).view(shape).to(h.dtype) + self.shift(y).view(shape).to(h.dtype)


class ProjectionHead(nn.Module):
    """Miyato & Koyama 2018: the class term <embed(y), phi(x)> added to D's unconditional score psi(phi(x))."""

    def __init__(self, features: int, n_classes: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_classes, features)
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, features: Tensor, y: Tensor) -> Tensor:
        # In fp32 like the logit layer: the term is added to the logit the losses see.
        with torch.autocast(features.device.type, enabled=False):
            return (self.embed(y).float() * features.float()).sum(1)


def class_head(features: int, n_classes: int) -> nn.Linear:
    """ACGAN's auxiliary classifier: a linear layer from D's last features to class logits (fp32, like the
    adversarial logit)."""
    return FP32Linear(features, n_classes)
