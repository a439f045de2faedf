"""Fully connected generator and discriminator: the 2-D toy lab's models and the reference 'vanilla GAN'."""
from __future__ import annotations

import math
from typing import Annotated, Literal

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

from gankit.models.layers import FP32Linear
from gankit.errors import ParamError
from gankit.registry import AT_LEAST_ONE, MODELS, NON_NEGATIVE

Role = Literal["generator", "discriminator"]
_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh, "elu": nn.ELU}


class MLP(nn.Module):
    """Hidden layers of ``widths`` units. G maps z to a flat sample reshaped to ``data_shape``;
    D maps a sample to one raw score per sample (shape [batch])."""

    def __init__(
        self,
        role: Role,
        data_shape: tuple[int, ...],
        z_dim: int,
        widths: list[int],
        activation: str,
        output: Literal["linear", "tanh"],
        spectral_norm: bool,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.role = role
        self.data_shape = tuple(data_shape)
        features = math.prod(self.data_shape)
        sizes = [z_dim if role == "generator" else features] + list(widths)
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            linear = FP32Linear if i == 0 and role == "discriminator" else nn.Linear
            # Batch norm makes the linear layer's bias redundant.
            layers.append(linear(n_in, n_out, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(n_out))
            layers.append(_ACTIVATIONS[activation]())
        layers.append(FP32Linear(sizes[-1], features if role == "generator" else 1))
        if role == "generator" and output == "tanh":
            layers.append(nn.Tanh())
        if spectral_norm:
            layers = [apply_spectral_norm(m) if isinstance(m, nn.Linear) else m for m in layers]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.role == "generator":
            return self.net(x).view(x.shape[0], *self.data_shape)
        return self.net(x.flatten(1)).squeeze(1)


@MODELS.register("mlp", "fully connected G or D: hidden widths, optional batch norm and spectral norm")
def mlp(
    role: Role,
    data_shape: tuple[int, ...],
    z_dim: int,
    *,
    width: Annotated[int, AT_LEAST_ONE] = 256,
    depth: Annotated[int, NON_NEGATIVE] = 3,
    widths: list[Annotated[int, AT_LEAST_ONE]] | None = None,
    activation: Literal["relu", "leaky_relu", "tanh", "elu"] = "relu",
    output: Literal["linear", "tanh"] = "linear",
    batch_norm: bool = False,
    spectral_norm: bool = False,
) -> MLP:
    """width, depth: depth hidden layers of width units; widths: one entry per hidden layer, replacing both.
    batch_norm: BatchNorm1d after every hidden linear layer (the reference vanilla-GAN generator has it)."""
    if widths is not None and not widths:
        raise ParamError("widths", "must list at least one hidden width, or be null to use width and depth")
    return MLP(role, data_shape, z_dim, list(widths) if widths is not None else [width] * depth, activation, output,
               spectral_norm, batch_norm)
