"""Fully connected generator and discriminator: the 2-D toy lab's models and the reference 'vanilla GAN'.

Conditioning (``model.conditional: true``): G takes the one-hot class concatenated to z (``concat``) or
conditional batch norms (``cbn``); D takes the one-hot class concatenated to its input (``concat``), adds the
projection term (``projection``), and/or has a class head (``class_head``, ACGAN). An InfoGAN D has a Q head on
its last hidden layer (``q_head``; gankit.models.conditional.QHead).
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from torch import Tensor, nn

from gankit.errors import ParamError
from gankit.prior import CodeSpec
from gankit.models.conditional import (ConditionalBatchNorm, DCondition, DOutput, GCondition, ProjectionHead, QHead,
                                       check_q_head, class_head, discriminator_output, one_hot, resolve_condition)
from gankit.models.spectral import spectral_norm as apply_spectral_norm
from gankit.models.layers import image_output, unit_pixels
from gankit.models.layers import FP32Linear, reference_init
from gankit.models.layers import activation as make_activation
from gankit.registry import AT_LEAST_ONE, FRACTION, MODELS, NON_NEGATIVE, POSITIVE

Role = Literal["generator", "discriminator"]


class MLP(nn.Module):
    """Hidden layers of ``widths`` units. G maps z (and y) to a flat sample reshaped to ``data_shape``;
    D maps a sample (and y) to one raw score per sample (shape [batch]), or a DOutput with a class head."""

    def __init__(
        self,
        role: Role,
        data_shape: tuple[int, ...],
        z_dim: int,
        widths: list[int],
        activation: str,
        output: Literal["linear", "tanh", "sigmoid"],
        spectral_norm: bool,
        batch_norm: bool = False,
        n_classes: int = 0,
        condition: str = "none",
        with_class_head: bool = False,
        init_std: float | None = None,
        q_hidden: int | None = None,
        leaky_slope: float = 0.2,
        unit_input: bool = False,
        norm_first: bool = True,
        init: Literal["pytorch", "reference"] = "pytorch",
    ) -> None:
        super().__init__()
        self.role = role
        self.data_shape = tuple(data_shape)
        self.n_classes, self.condition = n_classes, condition
        self.uses_labels = condition != "none"
        features = math.prod(self.data_shape)
        first = z_dim if role == "generator" else features
        sizes = [first + (n_classes if condition == "concat" else 0)] + list(widths)
        self.hidden = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            linear = FP32Linear if i == 0 and role == "discriminator" else nn.Linear
            norm = batch_norm and (i > 0 or norm_first)
            # Batch norm makes the linear layer's bias redundant.
            self.hidden.append(linear(n_in, n_out, bias=not norm))
            if norm:
                cbn = condition == "cbn"
                self.norms.append(ConditionalBatchNorm(n_out, n_classes, dims=1) if cbn else nn.BatchNorm1d(n_out))
            elif batch_norm:
                self.norms.append(nn.Identity())  # norm_first: false, the first layer's slot
            self.acts.append(make_activation(activation, leaky_slope))
        self.out = FP32Linear(sizes[-1], features if role == "generator" else 1)
        self.output = output if role == "generator" else "linear"
        self.unit_input = unit_input
        self.projection = ProjectionHead(sizes[-1], n_classes) if condition == "projection" else None
        self.class_head = class_head(sizes[-1], n_classes) if with_class_head else None
        # InfoGAN's Q head: attached by the experiment once the codes are known (attach_q_head).
        self.q_hidden, self.q_head = q_hidden, None
        self._q_features, self._init_std, self._spectral_norm = sizes[-1], init_std, spectral_norm
        if init_std is not None:  # N(0, init_std^2) weights, zero biases (PacGAN's and DCGAN's init)
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, 0.0, init_std)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
        self._init = init
        if init == "reference":
            reference_init(self)
        if spectral_norm:
            for module in [*self.hidden, self.out, self.class_head]:
                if module is not None:
                    apply_spectral_norm(module)
            if self.projection is not None:
                apply_spectral_norm(self.projection.embed)

    def features(self, x: Tensor, y: Tensor | None) -> Tensor:
        if self.condition == "concat":
            x = torch.cat([x, one_hot(y, self.n_classes, x.dtype)], dim=1)
        for i, (linear, act) in enumerate(zip(self.hidden, self.acts)):
            x = linear(x)
            if self.norms:
                norm = self.norms[i]
                x = norm(x, y) if isinstance(norm, ConditionalBatchNorm) else norm(x)
            x = act(x)
        return x

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | DOutput:
        if self.uses_labels and y is None:
            raise ValueError(f"this {self.role} is conditional: call it with class labels y")
        if self.role == "generator":
            out = self.out(self.features(x, y))
            return image_output(out, self.output).view(x.shape[0], *self.data_shape)
        h = self.features((unit_pixels(x) if self.unit_input else x).flatten(1), y)
        return discriminator_output(self.out(h).squeeze(1), h, y, self.projection, self.class_head, self.q_head)

    def attach_q_head(self, codes: "CodeSpec") -> None:
        """Give D the Q head of ``codes`` (requested with q_head: true), initialised like the rest of D."""
        head = QHead(self._q_features, codes, self.q_hidden or 0)
        if self._init == "reference":
            reference_init(head)
        for module in head.modules():
            if isinstance(module, nn.Linear):
                if self._init_std is not None:
                    nn.init.normal_(module.weight, 0.0, self._init_std)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                if self._spectral_norm:
                    apply_spectral_norm(module)
        self.q_head = head.to(next(self.parameters()).device)


AUTO = {"generator": "concat", "discriminator": "concat"}
ALLOWED = {"generator": ("none", "concat", "cbn"), "discriminator": ("none", "concat", "projection")}


@MODELS.register("mlp", "fully connected G or D: hidden widths, batch norm, spectral norm, class conditioning")
def mlp(
    role: Role,
    data_shape: tuple[int, ...],
    z_dim: int,
    n_classes: int = 0,
    *,
    width: Annotated[int, AT_LEAST_ONE] = 256,
    depth: Annotated[int, NON_NEGATIVE] = 3,
    widths: list[Annotated[int, AT_LEAST_ONE]] | None = None,
    activation: Literal["relu", "leaky_relu", "tanh", "elu"] = "relu",
    leaky_slope: Annotated[float, FRACTION] = 0.2,
    output: Literal["linear", "tanh", "sigmoid"] = "linear",
    unit_pixels: bool = False,
    batch_norm: bool = False,
    spectral_norm: bool = False,
    condition: GCondition | DCondition = "auto",
    class_head: bool = False,
    init_std: Annotated[float, POSITIVE] | None = None,
    q_head: bool = False,
    q_hidden: Annotated[int, NON_NEGATIVE] = 0,
    norm_first: bool = True,
    init: Literal["pytorch", "reference"] = "pytorch",
) -> MLP:
    """width, depth: depth hidden layers of width units; widths: one entry per hidden layer, replacing both.
    leaky_slope: LeakyReLU's negative slope, when activation is leaky_relu.
    output: G only: linear, tanh, or sigmoid (the image sigmoid(a) in [0, 1], handed on as 2 * sigmoid(a) - 1).
    unit_pixels: D only: D reads (x + 1) / 2, the [0, 1] pixels of code that trains on ToTensor() images.
    batch_norm: BatchNorm1d after every hidden linear layer (the reference vanilla-GAN generator has it);
        norm_first: false leaves the first one out (the reference MLP discriminators with_bn).
    init: pytorch = PyTorch's defaults; reference = xyfJASON/GANs-Implementations' init_weights(None): zero biases,
        batch-norm scales N(1, 0.02^2) (what every network of that repo gets).
    condition (conditional runs): auto = concat; G: concat (one-hot y joined to z) or cbn (conditional batch
        norms; needs batch_norm); D: concat (one-hot y joined to x) or projection (+ <embed(y), features>).
    class_head: D only: class logits from the last hidden layer (ACGAN).
    init_std: linear weights N(0, init_std^2) and zero biases (PacGAN: 0.02); null: PyTorch's default init.
    q_head: D only: InfoGAN's Q head on the last hidden layer, sized by model.codes.
    q_hidden: units of a hidden layer in the Q head (linear, batch norm, LeakyReLU); 0: none."""
    if widths is not None and not widths:
        raise ParamError("widths", "must list at least one hidden width, or be null to use width and depth")
    sizes = list(widths) if widths is not None else [width] * depth
    condition = resolve_condition("mlp", role, condition, n_classes, class_head, auto=AUTO, allowed=ALLOWED,
                                  batch_norm=batch_norm)
    if (condition == "projection" or class_head) and not sizes:
        raise ParamError("depth", f"must be >= 1 for {'a projection' if condition == 'projection' else 'a class head'}")
    check_q_head(role, q_head, q_hidden)
    if role == "generator" and unit_pixels:
        raise ParamError("unit_pixels", "is D's input mapping; G's is output: sigmoid")
    if role == "discriminator" and output != "linear":
        raise ParamError("output", "is G's sample output; D's output is always a linear logit (remove it)")
    if q_head and not sizes:
        raise ParamError("depth", "must be >= 1 for a Q head")
    if not norm_first and not batch_norm:
        raise ParamError("norm_first", "places the first batch norm; it needs batch_norm: true")
    if init == "reference" and init_std is not None:
        raise ParamError("init", "reference keeps PyTorch's weights; init_std draws them N(0, init_std^2): use one")
    return MLP(role, data_shape, z_dim, sizes, activation, output, spectral_norm, batch_norm, n_classes, condition,
               class_head, init_std, q_hidden if q_head else None, leaky_slope, unit_pixels, norm_first, init)
