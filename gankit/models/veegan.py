"""VEEGAN's networks (Srivastava et al. 2017): a joint discriminator D(z, x) and a reconstructor F: x -> z.

* ``joint_mlp`` (model.discriminator): an MLP on the sample and its code joined, [x.flatten(1), code], with one
  raw score per pair. The trainer calls it ``D(x, y, code)`` with the codes an objective term gives (the veegan
  term: z with each generated sample, F(x) + noise with each real one).
* ``encoder_mlp`` (a network of model.networks, e.g. VEEGAN's reconstructor): an MLP from a sample to a code of
  ``code_dim`` values (model.z_dim by default).

Both follow xyfJASON/GANs-Implementations ``models/simple_mlp_veegan.py``: hidden linear layers, each followed
by an optional batch norm and a LeakyReLU(0.2); the reference D and reconstructor have no batch norm after the
first hidden layer (``norm_first: false``), its generator has one everywhere (gankit's ``mlp`` with
``batch_norm: true``). ``init: reference`` is that repo's ``init_weights(None)``: PyTorch's default linear
weights, zero biases, batch-norm scales N(1, 0.02^2).
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from torch import Tensor, nn

from gankit.errors import ParamError
from gankit.models.layers import FP32Linear, reference_init
from gankit.models.layers import activation as make_activation
from gankit.registry import AT_LEAST_ONE, MODELS

Activation = Literal["relu", "leaky_relu", "tanh", "elu"]
Init = Literal["pytorch", "reference"]


class MLPStack(nn.Module):
    """n_in -> widths... -> n_out: linear, [batch norm], activation per hidden layer; a linear output layer.
    The input and output layers compute in fp32 under bf16 autocast (see layers.FP32Linear)."""

    def __init__(self, n_in: int, widths: list[int], n_out: int, activation: str, batch_norm: bool,
                 norm_first: bool, init: str) -> None:
        super().__init__()
        sizes = [n_in] + list(widths)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            norm = batch_norm and (i > 0 or norm_first)
            layers.append((FP32Linear if i == 0 else nn.Linear)(a, b, bias=not norm))  # BN makes a bias redundant
            if norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(make_activation(activation))
        self.hidden = nn.Sequential(*layers)
        self.out = FP32Linear(sizes[-1], n_out)
        if init == "reference":
            reference_init(self)

    def forward(self, h: Tensor) -> Tensor:
        return self.out(self.hidden(h))


class JointDiscriminator(nn.Module):
    """D(z, x): one raw score [B] per (code, sample) pair. ``code_dim``: the width of the code; ``z_dim``: the
    run's model.z_dim (what a term that pairs samples with z checks the code width against)."""

    def __init__(self, data_shape: tuple[int, ...], z_dim: int, code_dim: int, net: MLPStack) -> None:
        super().__init__()
        self.data_shape, self.z_dim, self.code_dim = tuple(data_shape), z_dim, code_dim
        self.net = net

    def forward(self, x: Tensor, y: Tensor | None = None, code: Tensor | None = None) -> Tensor:
        if code is None:
            raise ValueError("joint_mlp scores (code, sample) pairs: call it D(x, y, code)")
        return self.net(torch.cat([x.flatten(1), code.to(x.dtype)], dim=1)).squeeze(1)


class Encoder(nn.Module):
    """F: x -> a code [B, code_dim] (VEEGAN's reconstructor of z)."""

    def __init__(self, data_shape: tuple[int, ...], z_dim: int, code_dim: int, net: MLPStack) -> None:
        super().__init__()
        self.data_shape, self.z_dim, self.code_dim = tuple(data_shape), z_dim, code_dim
        self.net = net

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(x.flatten(1))


def _stack(n_in: int, n_out: int, width: int, depth: int, widths: list[int] | None, activation: str,
           batch_norm: bool, norm_first: bool, init: str) -> MLPStack:
    if widths is not None and not widths:
        raise ParamError("widths", "must list at least one hidden width, or be null to use width and depth")
    return MLPStack(n_in, list(widths) if widths is not None else [width] * depth, n_out, activation, batch_norm,
                    norm_first, init)


@MODELS.register("joint_mlp", "joint discriminator D(z, x): an MLP on a sample and its code (VEEGAN)")
def joint_mlp(
    role: str,
    data_shape: tuple[int, ...],
    z_dim: int,
    n_classes: int = 0,
    *,
    width: Annotated[int, AT_LEAST_ONE] = 256,
    depth: Annotated[int, AT_LEAST_ONE] = 3,
    widths: list[Annotated[int, AT_LEAST_ONE]] | None = None,
    activation: Activation = "leaky_relu",
    batch_norm: bool = False,
    norm_first: bool = False,
    code_dim: Annotated[int, AT_LEAST_ONE] | None = None,
    init: Init = "pytorch",
) -> JointDiscriminator:
    """width, depth: depth hidden layers of width units; widths: one entry per hidden layer, replacing both.
    batch_norm: BatchNorm1d after the hidden linear layers but the first; norm_first: after the first one too.
    code_dim: the width of the code paired with each sample (null: model.z_dim).
    init: pytorch = PyTorch's defaults; reference = zero biases and batch-norm scales N(1, 0.02^2)."""
    if role != "discriminator":
        raise ParamError("name", "joint_mlp is a discriminator (D(z, x)); use mlp for the generator")
    if n_classes:
        raise ParamError("name", "joint_mlp has no class conditioning; VEEGAN runs are unconditional")
    code_dim = code_dim or z_dim
    net = _stack(math.prod(data_shape) + code_dim, 1, width, depth, widths, activation, batch_norm, norm_first,
                 init)
    return JointDiscriminator(data_shape, z_dim, code_dim, net)


@MODELS.register("encoder_mlp", "encoder MLP x -> code (VEEGAN's reconstructor F: x -> z)")
def encoder_mlp(
    role: str,
    data_shape: tuple[int, ...],
    z_dim: int,
    n_classes: int = 0,
    *,
    width: Annotated[int, AT_LEAST_ONE] = 256,
    depth: Annotated[int, AT_LEAST_ONE] = 3,
    widths: list[Annotated[int, AT_LEAST_ONE]] | None = None,
    activation: Activation = "leaky_relu",
    batch_norm: bool = False,
    norm_first: bool = False,
    code_dim: Annotated[int, AT_LEAST_ONE] | None = None,
    init: Init = "pytorch",
) -> Encoder:
    """width, depth, widths, activation, batch_norm, norm_first, init: as joint_mlp.
    code_dim: the width of the code (null: model.z_dim)."""
    if role in ("generator", "discriminator"):
        raise ParamError("name", f"encoder_mlp maps samples to codes and cannot be the {role}; name it in "
                                 "model.networks (e.g. VEEGAN's reconstructor)")
    if n_classes:
        raise ParamError("name", "encoder_mlp has no class conditioning; VEEGAN runs are unconditional")
    code_dim = code_dim or z_dim
    return Encoder(data_shape, z_dim, code_dim,
                   _stack(math.prod(data_shape), code_dim, width, depth, widths, activation, batch_norm, norm_first,
                          init))
