"""Fully connected generator and discriminator: the 2-D toy lab's models and the reference 'vanilla GAN'."""
from __future__ import annotations

import math
from typing import Annotated, Literal

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

from gankit.models.layers import FP32Linear
from gankit.registry import AT_LEAST_ONE, MODELS, NON_NEGATIVE

Role = Literal["generator", "discriminator"]
_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh, "elu": nn.ELU}


class MLP(nn.Module):
    """depth hidden layers of ``width`` units. G maps z to a flat sample reshaped to ``data_shape``;
    D maps a sample to one raw score per sample (shape [batch])."""

    def __init__(
        self,
        role: Role,
        data_shape: tuple[int, ...],
        z_dim: int,
        width: int,
        depth: int,
        activation: str,
        output: Literal["linear", "tanh"],
        spectral_norm: bool,
    ) -> None:
        super().__init__()
        self.role = role
        self.data_shape = tuple(data_shape)
        features = math.prod(self.data_shape)
        sizes = [z_dim if role == "generator" else features] + [width] * depth
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            linear = FP32Linear if i == 0 and role == "discriminator" else nn.Linear
            layers += [linear(n_in, n_out), _ACTIVATIONS[activation]()]
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


@MODELS.register("mlp", "fully connected G or D: depth x width hidden layers, optional spectral norm")
def mlp(
    role: Role,
    data_shape: tuple[int, ...],
    z_dim: int,
    *,
    width: Annotated[int, AT_LEAST_ONE] = 256,
    depth: Annotated[int, NON_NEGATIVE] = 3,
    activation: Literal["relu", "leaky_relu", "tanh", "elu"] = "relu",
    output: Literal["linear", "tanh"] = "linear",
    spectral_norm: bool = False,
) -> MLP:
    return MLP(role, data_shape, z_dim, width, depth, activation, output, spectral_norm)
