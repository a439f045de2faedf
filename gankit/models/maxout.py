"""A maxout discriminator (Goodfellow et al. 2013), the D of the VEEGAN and PacGAN 2-D experiments.

Each hidden layer is a linear map to ``width * pieces`` units followed by the maximum over each group of
``pieces``; the output layer is linear. PacGAN's 2-D D (fjxmlzn/PacGAN, synthetic_data_experiments/*/
pacgan_task.py): 3 maxout layers of 200 units with 5 pieces, no batch norm, weights N(0, 0.02), biases 0.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

from torch import Tensor, nn

from gankit.errors import ParamError
from gankit.models.layers import FP32Linear
from gankit.registry import AT_LEAST_ONE, MODELS, POSITIVE


class Maxout(nn.Module):
    def __init__(self, n_in: int, width: int, pieces: int, linear: type[nn.Linear] = nn.Linear) -> None:
        super().__init__()
        self.width, self.pieces = width, pieces
        self.linear = linear(n_in, width * pieces)

    def forward(self, x: Tensor) -> Tensor:
        # Unit j takes the max over pieces j*p .. j*p + p - 1 (contiguous groups, as blocks' LinearMaxout).
        return self.linear(x).view(x.shape[0], self.width, self.pieces).amax(dim=2)


class MaxoutDiscriminator(nn.Module):
    def __init__(self, n_in: int, width: int, depth: int, pieces: int, init_std: float | None) -> None:
        super().__init__()
        sizes = [n_in] + [width] * depth
        # D's input layer in fp32 under bf16 autocast (see layers.FP32Linear), the rest in the compute dtype.
        self.hidden = nn.Sequential(*[Maxout(a, b, pieces, FP32Linear if i == 0 else nn.Linear)
                                      for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))])
        self.out = FP32Linear(sizes[-1], 1)
        if init_std is not None:
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, 0.0, init_std)
                    nn.init.zeros_(module.bias)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.out(self.hidden(x.flatten(1))).squeeze(1)


@MODELS.register("maxout", "maxout MLP discriminator (VEEGAN / PacGAN 2-D experiments)")
def maxout(
    role: Literal["generator", "discriminator"],
    data_shape: tuple[int, ...],
    z_dim: int,
    n_classes: int = 0,
    *,
    width: Annotated[int, AT_LEAST_ONE] = 200,
    depth: Annotated[int, AT_LEAST_ONE] = 3,
    pieces: Annotated[int, AT_LEAST_ONE] = 5,
    init_std: Annotated[float, POSITIVE] | None = None,
) -> MaxoutDiscriminator:
    """width, depth: depth maxout layers of width units, each the max of `pieces` linear units.
    init_std: weights N(0, init_std^2) and zero biases (PacGAN: 0.02); null: PyTorch's default init."""
    if role != "discriminator":
        raise ParamError("name", "maxout is a discriminator; use mlp for the generator")
    if n_classes:
        raise ParamError("name", "maxout has no class conditioning; use mlp for a conditional D")
    return MaxoutDiscriminator(math.prod(data_shape), width, depth, pieces, init_std)
