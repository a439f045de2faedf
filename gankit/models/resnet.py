"""The SNGAN ResNets for CIFAR-10 (Miyato et al., ICLR 2018; Miyato & Koyama, ICLR 2018), after the authors'
Chainer code (pfnet-research/sngan_projection ``gen_models/resnet_32.py``, ``dis_models/snresnet_32.py``).

G: z -> linear -> s0 x s0 x width -> three up blocks (s0 -> 2 s0 -> 4 s0 -> 8 s0 = R) -> BN, ReLU, conv3x3 to C
channels, tanh. An up block: residual BN, ReLU, nearest upsample x2, conv3x3, BN, ReLU, conv3x3; shortcut
nearest upsample x2, conv1x1. width 256 and z_dim 128 at 32 px is the paper's model (4.28M parameters).

D: an optimised first block C -> width (conv3x3, ReLU, conv3x3, avgpool2; shortcut avgpool2, conv1x1), then
three blocks of width channels (ReLU, conv3x3, ReLU, conv3x3, [avgpool2]; shortcut conv1x1 [, avgpool2] when it
downsamples or changes the channels, else the identity), the first of which downsamples: at 32 px the maps are
32 -> 16 -> 8 -> 8 -> 8. Then ReLU, global sum pooling, a linear layer (no bias, as the reference) to the logit.
width 128 at 32 px is the paper's model (1.05M parameters). Spectral norm on every convolution and linear layer
(on by default in D).

Resolutions: 32 px (the paper's CIFAR-10 model), and the same network at 48 and 64 px (s0 = R / 8: 6x6, 8x8);
these are not the paper's STL-10 / ImageNet models (which have more blocks).

Conditioning (``model.conditional: true``): G ``cbn`` (auto): the batch norms of the three blocks are
conditional batch norms (the final batch norm stays unconditional, as in the reference code); G ``concat``:
the one-hot class joined to z. D ``projection`` (auto): + <embed(y), phi(x)>, phi the sum-pooled features the
logit is computed from, the embedding spectrally normalised with the rest; D ``class_head`` (ACGAN): class
logits from the same pooled features.

Initialisation as the reference: Xavier uniform, gain sqrt(2) for the convolutions of the residual paths and
gain 1 for the shortcuts, the linear layers and the output convolution; biases 0.

Precision: under bf16 autocast the blocks run in bf16; G's output convolution, D's pooling, logit, projection
and class head compute in fp32.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import ParamError
from gankit.models.conditional import (ConditionalBatchNorm, DOutput, ProjectionHead, class_head,
                                       discriminator_output, one_hot, resolve_condition)
from gankit.models.spectral import spectral_norm as apply_spectral_norm
from gankit.models.layers import FP32Conv2d, FP32Linear
from gankit.registry import AT_LEAST_ONE, MODELS

Role = Literal["generator", "discriminator"]
GCondition = Literal["auto", "none", "cbn", "concat"]
DCondition = Literal["auto", "none", "projection"]
RESOLUTIONS = (32, 48, 64)
CHANNELS = (1, 3)
RESIDUAL_GAIN = math.sqrt(2)


def check_data_shape(data_shape: tuple[int, ...]) -> tuple[int, int]:
    """(channels, resolution) of a (C, H, W) image shape that sngan_resnet supports; ParamError otherwise."""
    shape = tuple(data_shape)
    if len(shape) != 3 or shape[0] not in CHANNELS or shape[1] != shape[2] or shape[1] not in RESOLUTIONS:
        sizes = ", ".join(f"{r}x{r}" for r in RESOLUTIONS)
        raise ParamError("name", f"is sngan_resnet, which supports {sizes} images with 1 or 3 channels (data "
                                 f"shape (C, H, W)); got data shape {shape}")
    return shape[0], shape[1]


def _xavier(module: nn.Conv2d | nn.Linear, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(module.weight, gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


def _conv(c_in: int, c_out: int, kernel: int, gain: float, fp32: bool = False) -> nn.Conv2d:
    return _xavier((FP32Conv2d if fp32 else nn.Conv2d)(c_in, c_out, kernel, 1, kernel // 2), gain)


def _norm(x: Tensor, norm: nn.Module, y: Tensor | None) -> Tensor:
    return norm(x, y) if isinstance(norm, ConditionalBatchNorm) else norm(x)


def _upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class UpBlock(nn.Module):
    """G's residual block: x2 resolution, ``channels`` in and out (so the shortcut is learned: upsample, 1x1)."""

    def __init__(self, channels: int, n_classes: int = 0) -> None:
        super().__init__()

        def norm() -> nn.Module:
            return ConditionalBatchNorm(channels, n_classes) if n_classes else nn.BatchNorm2d(channels)

        self.norm1, self.conv1 = norm(), _conv(channels, channels, 3, RESIDUAL_GAIN)
        self.norm2, self.conv2 = norm(), _conv(channels, channels, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(channels, channels, 1, 1.0)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.conv1(_upsample(F.relu(_norm(x, self.norm1, y))))
        h = self.conv2(F.relu(_norm(h, self.norm2, y)))
        return h + self.shortcut(_upsample(x))


class DownBlock(nn.Module):
    """D's residual block: ReLU, conv3x3, ReLU, conv3x3 [, avgpool2]; shortcut conv1x1 [, avgpool2] when it
    downsamples or changes the channels, else the identity. ``optimised``: D's first block, on the image: no
    ReLU before its first convolution, and the shortcut pools before its 1x1 convolution."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, optimised: bool = False) -> None:
        super().__init__()
        self.downsample, self.optimised = downsample or optimised, optimised
        self.conv1 = _conv(c_in, c_out if optimised else c_in, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(c_out if optimised else c_in, c_out, 3, RESIDUAL_GAIN)
        learned = optimised or downsample or c_in != c_out
        self.shortcut = _conv(c_in, c_out, 1, 1.0) if learned else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.optimised else F.relu(x))))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.shortcut is None:
            return h + x
        if self.optimised:
            return h + self.shortcut(F.avg_pool2d(x, 2))
        s = self.shortcut(x)
        return h + (F.avg_pool2d(s, 2) if self.downsample else s)


def _spectral_norm(model: nn.Module) -> None:
    """W / sigma(W) on every convolution and linear layer and on a projection embedding (after the init)."""
    for m in list(model.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            apply_spectral_norm(m)
        elif isinstance(m, ProjectionHead):
            apply_spectral_norm(m.embed)


class ResNetGenerator(nn.Module):
    """z [B, z_dim] (and class indices y [B]) -> images [B, C, R, R] in [-1, 1]."""

    def __init__(self, data_shape: tuple[int, ...], z_dim: int, width: int, spectral_norm: bool,
                 n_classes: int = 0, condition: str = "none") -> None:
        super().__init__()
        channels, resolution = check_data_shape(data_shape)
        self.data_shape = (channels, resolution, resolution)
        self.n_classes, self.condition, self.width = n_classes, condition, width
        self.uses_labels = condition != "none"
        self.s0 = resolution // 8
        z_in = z_dim + (n_classes if condition == "concat" else 0)
        self.linear = _xavier(nn.Linear(z_in, self.s0 * self.s0 * width), 1.0)
        self.blocks = nn.ModuleList(UpBlock(width, n_classes if condition == "cbn" else 0) for _ in range(3))
        self.norm = nn.BatchNorm2d(width)  # unconditional, as in the reference
        self.out = _conv(width, channels, 3, 1.0, fp32=True)
        if spectral_norm:
            _spectral_norm(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.uses_labels and y is None:
            raise ValueError("this generator is conditional: call it with class labels y")
        z = z.reshape(z.shape[0], -1)
        if self.condition == "concat":
            z = torch.cat([z, one_hot(y, self.n_classes, z.dtype)], dim=1)
        h = self.linear(z).view(z.shape[0], self.width, self.s0, self.s0)
        for block in self.blocks:
            h = block(h, y if self.condition == "cbn" else None)
        return self.out(F.relu(self.norm(h))).tanh()


class ResNetDiscriminator(nn.Module):
    """images [B, C, R, R] (and class indices y [B]) -> one raw score (logit) per sample, shape [B], fp32; with a
    class head, a DOutput whose heads["class"] holds the class logits [B, K] (fp32)."""

    def __init__(self, data_shape: tuple[int, ...], width: int, spectral_norm: bool, n_classes: int = 0,
                 condition: str = "none", with_class_head: bool = False) -> None:
        super().__init__()
        channels, resolution = check_data_shape(data_shape)
        self.data_shape = (channels, resolution, resolution)
        self.condition = condition
        self.uses_labels = condition != "none"
        self.blocks = nn.Sequential(
            DownBlock(channels, width, downsample=True, optimised=True),
            DownBlock(width, width, downsample=True),
            DownBlock(width, width, downsample=False),
            DownBlock(width, width, downsample=False),
        )
        self.out = _xavier(FP32Linear(width, 1, bias=False), 1.0)
        self.projection = ProjectionHead(width, n_classes) if condition == "projection" else None
        self.class_head = _xavier(class_head(width, n_classes), 1.0) if with_class_head else None
        if spectral_norm:
            _spectral_norm(self)

    def features(self, x: Tensor) -> Tensor:
        """phi(x): ReLU of the last block's map, sum-pooled over the positions (in fp32): [B, width]."""
        return F.relu(self.blocks(x)).float().sum(dim=(2, 3))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | DOutput:
        if self.uses_labels and y is None:
            raise ValueError("this discriminator is conditional: call it with class labels y")
        h = self.features(x)
        return discriminator_output(self.out(h).squeeze(1), h, y, self.projection, self.class_head)


AUTO = {"generator": "cbn", "discriminator": "projection"}  # the paper's pairing (Miyato & Koyama 2018)
ALLOWED = {"generator": ("none", "cbn", "concat"), "discriminator": ("none", "projection")}


@MODELS.register("sngan_resnet", "SNGAN ResNet G or D (Miyato et al. 2018) for 32/48/64 px images: cBN, "
                                 "projection, spectral norm")
def sngan_resnet(
    role: Role,
    data_shape: tuple[int, ...],
    z_dim: int,
    n_classes: int = 0,
    *,
    width: Annotated[int, AT_LEAST_ONE] | None = None,
    spectral_norm: bool | None = None,
    condition: GCondition | DCondition = "auto",
    class_head: bool = False,
) -> ResNetGenerator | ResNetDiscriminator:
    """SNGAN ResNet generator or discriminator.

    width: channels of every block; null = the paper's: 256 in G, 128 in D.
    spectral_norm: W / sigma(W) on every convolution and linear layer (and the projection embedding, the class
        head); null = the paper's: on in D, off in G.
    condition (conditional runs): auto = cbn in G, projection in D (none in D with a class head); G: cbn
        (conditional batch norms in the blocks) or concat (one-hot y joined to z); D: projection
        (+ <embed(y), sum-pooled features>).
    class_head: D only: class logits from the sum-pooled features (ACGAN).
    """
    generator = role == "generator"
    if width is None:
        width = 256 if generator else 128
    if spectral_norm is None:
        spectral_norm = not generator
    condition = resolve_condition("sngan_resnet", role, condition, n_classes, class_head, auto=AUTO, allowed=ALLOWED)
    if generator:
        return ResNetGenerator(data_shape, z_dim, width, spectral_norm, n_classes, condition)
    return ResNetDiscriminator(data_shape, width, spectral_norm, n_classes, condition, class_head)
