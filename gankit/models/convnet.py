"""A plain stack of (transposed) convolutions with explicit kernels and strides and no padding.

This is the shape of the small MNIST networks in afshindini/GAN-Methods-with-Pytorch (`Methods/DCGAN/DCGAN.py`,
`WGAN.py`, `SN_DCGAN.py`), which the DCGAN model (gankit.models.dcgan: 4x4 stride-2 layers with padding 1, one
resolution doubling per layer) cannot express:

* G: z as a 1x1 map -> ConvTranspose2d(k_i, s_i, padding 0) -> [batch norm] -> ReLU -> ... -> the last
  ConvTranspose2d to C channels -> tanh (or sigmoid). Side length after layer i: (n - 1) * s_i + k_i, so
  kernels [3, 4, 3, 4] and strides [2, 1, 2, 2] give 1 -> 3 -> 6 -> 13 -> 28.
* D: Conv2d(k_i, s_i, padding 0) -> [batch norm] -> LeakyReLU -> ... -> the last Conv2d to one channel, which
  must see a 1x1 map: side floor((n - k_i) / s_i) + 1, so kernels [4, 4, 4] and strides [2, 2, 2] give
  28 -> 13 -> 5 -> 1. Batch norm follows every hidden convolution, the first included (as in that code).

Every convolution keeps its bias, also before a batch norm (where it gets no gradient), so parameter counts
equal the reference code's. ``init: normal`` is that code's ``weights_init``: (transposed) convolution weights
N(0, init_std^2) with PyTorch's default biases, batch-norm scale N(bn_scale_mean, init_std^2) and shift 0. The
reference draws the scale around 0 (``normal_(m.weight, 0.0, 0.02)``, where the DCGAN paper means 1):
``bn_scale_mean: 0`` reproduces it, 1 is the paper's.

Precision: under bf16 autocast the hidden layers run in bf16; G's and D's last layers compute in fp32.
"""
from __future__ import annotations

from typing import Annotated, Literal

from torch import Tensor, nn

from gankit.errors import ParamError
from gankit.models.layers import FP32Conv2d, FP32ConvTranspose2d, image_output, unit_pixels
from gankit.models.layers import activation as make_activation
from gankit.models.spectral import spectral_norm as apply_spectral_norm
from gankit.registry import AT_LEAST_ONE, FRACTION, MODELS, POSITIVE

Role = Literal["generator", "discriminator"]


def generator_sides(kernels: list[int], strides: list[int]) -> list[int]:
    """Side length of each map of G from the 1x1 latent: (n - 1) * s + k per transposed convolution."""
    sides = [1]
    for k, s in zip(kernels, strides):
        sides.append((sides[-1] - 1) * s + k)
    return sides


def discriminator_sides(resolution: int, kernels: list[int], strides: list[int]) -> list[int]:
    """Side length of each map of D from the image: floor((n - k) / s) + 1 per convolution (0: too small)."""
    sides = [resolution]
    for k, s in zip(kernels, strides):
        sides.append(max(0, (sides[-1] - k) // s + 1) if sides[-1] >= k else 0)
    return sides


def normal_init(model: nn.Module, std: float, bn_scale_mean: float) -> None:
    """The reference's ``weights_init``: conv weights N(0, std^2) (biases as PyTorch made them), batch-norm scale
    N(bn_scale_mean, std^2) and shift 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, bn_scale_mean, std)
            nn.init.zeros_(m.bias)


class ConvNetGenerator(nn.Module):
    """z [B, z_dim] -> images [B, C, R, R] in [-1, 1] (sigmoid output: 2 * sigmoid - 1, see layers.image_output)."""

    def __init__(self, data_shape: tuple[int, ...], z_dim: int, widths: list[int], kernels: list[int],
                 strides: list[int], batch_norm: bool, output: str) -> None:
        super().__init__()
        self.data_shape, self.z_dim, self.output = tuple(data_shape), z_dim, output
        self.uses_labels = False
        channels = [z_dim, *widths, data_shape[0]]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            last = i == len(channels) - 2
            conv = FP32ConvTranspose2d if last else nn.ConvTranspose2d
            layers.append(conv(c_in, c_out, kernels[i], strides[i]))
            if not last:
                layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return image_output(self.net(z.reshape(z.shape[0], self.z_dim, 1, 1)), self.output)


class ConvNetDiscriminator(nn.Module):
    """images [B, C, R, R] in [-1, 1] -> one raw score per sample, shape [B], fp32."""

    def __init__(self, data_shape: tuple[int, ...], widths: list[int], kernels: list[int], strides: list[int],
                 batch_norm: bool, leaky_slope: float, unit_input: bool) -> None:
        super().__init__()
        self.data_shape, self.unit_input = tuple(data_shape), unit_input
        self.uses_labels = False
        channels = [data_shape[0], *widths, 1]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            last = i == len(channels) - 2
            layers.append((FP32Conv2d if last else nn.Conv2d)(c_in, c_out, kernels[i], strides[i]))
            if not last:
                layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
                layers.append(make_activation("leaky_relu", leaky_slope))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(unit_pixels(x) if self.unit_input else x).reshape(x.shape[0])


@MODELS.register("convnet", "plain (transposed) convolutions with explicit kernels/strides, no padding "
                            "(seed 004's small MNIST DCGAN)")
def convnet(
    role: Role,
    data_shape: tuple[int, ...],
    z_dim: int,
    n_classes: int = 0,
    *,
    widths: list[Annotated[int, AT_LEAST_ONE]],
    kernels: list[Annotated[int, AT_LEAST_ONE]],
    strides: list[Annotated[int, AT_LEAST_ONE]],
    batch_norm: bool = True,
    spectral_norm: bool = False,
    leaky_slope: Annotated[float, FRACTION] = 0.2,
    output: Literal["tanh", "sigmoid"] = "tanh",
    unit_pixels: bool = False,
    init: Literal["normal", "default"] = "normal",
    init_std: Annotated[float, POSITIVE] = 0.02,
    bn_scale_mean: float = 1.0,
) -> ConvNetGenerator | ConvNetDiscriminator:
    """widths: hidden channels, G from the latent end, D from the image end; kernels, strides: one per layer
    (len(widths) + 1 each), padding 0. G's maps must end at the data's side, D's at 1x1.
    batch_norm: after every hidden layer (in D the first included). spectral_norm: on every convolution (meant
    for D; batch norm is kept, as the reference SN-DCGAN does).
    leaky_slope: D's LeakyReLU slope (G uses ReLU). output: G only, tanh or sigmoid (the image is sigmoid(a) in
    [0, 1], handed on as 2 * sigmoid(a) - 1). unit_pixels: D only, D reads (x + 1) / 2, the [0, 1] pixels of
    code that trains on ToTensor() images.
    init: normal = conv weights N(0, init_std^2), batch-norm scale N(bn_scale_mean, init_std^2) (the
    reference's weights_init draws it around 0); default = PyTorch's."""
    if n_classes:
        raise ParamError("name", "is convnet, which is unconditional (use dcgan, mlp or resnet for class conditioning)")
    shape = tuple(data_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ParamError("name", f"is convnet, which needs square images (C, H, W); got data shape {shape}")
    n = len(widths) + 1
    for key, values in (("kernels", kernels), ("strides", strides)):
        if len(values) != n:
            raise ParamError(key, f"must have len(widths) + 1 = {n} entries (one per layer), got {list(values)}")
    if role == "generator" and unit_pixels:
        raise ParamError("unit_pixels", "is D's input mapping; G's is output: sigmoid")
    if role == "generator":
        sides = generator_sides(kernels, strides)
        if sides[-1] != shape[1]:
            raise ParamError("kernels", f"and strides give G maps of side {sides} from the 1x1 latent; the last must "
                                        f"be the data's side {shape[1]}")
        model: nn.Module = ConvNetGenerator(shape, z_dim, list(widths), list(kernels), list(strides), batch_norm,
                                            output)
    else:
        if output != "tanh":
            raise ParamError("output", "is G's image output; D has none (remove it)")
        sides = discriminator_sides(shape[1], kernels, strides)
        if sides[-1] != 1 or 0 in sides:
            raise ParamError("kernels", f"and strides give D maps of side {sides} from the {shape[1]}x{shape[1]} "
                                        f"image; the last layer must see a 1x1 map")
        model = ConvNetDiscriminator(shape, list(widths), list(kernels), list(strides), batch_norm, leaky_slope,
                                     unit_pixels)
    if init == "normal":
        normal_init(model, init_std, bn_scale_mean)
    if spectral_norm:
        for m in list(model.modules()):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                apply_spectral_norm(m)
    return model
