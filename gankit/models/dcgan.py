"""DCGAN (Radford, Metz & Chintala, ICLR 2016) for 28, 32 and 64 pixel images, with optional spectral norm.

G: z -> (s0 x s0 x width*m[0]) -> ... -> (R/2 x R/2 x width*m[-1]) -> R x R x C, where every step doubles the
resolution with a 4x4 stride-2 transposed convolution, followed by batch norm and ReLU; tanh on the image.
s0 is 4 at 32 and 64 pixels, 7 at 28 pixels. The first step (z -> s0 x s0) is a transposed convolution from a
1x1 map with an s0 x s0 kernel, i.e. a linear layer whose output is read as a feature map.

D mirrors G: 4x4 stride-2 convolutions halve the resolution, LeakyReLU(0.2), batch norm on every convolution
except the first (as in the paper; switch it off for WGAN-GP and other gradient penalties, and for SNGAN), and a
final s0 x s0 convolution over the whole s0 x s0 map (a linear layer) gives one logit per sample.

``width: 256, multipliers: [4, 2, 1]`` at 32 pixels is the reference CIFAR-10 "SimpleCNN" recipe:
G: z -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x3, and D the mirror image.

Precision: under bf16 autocast the hidden layers (all the FLOPs) run in bf16; G's output layer and D's output
layer compute in fp32, so G's samples and D's logits are fp32 tensors (a few percent of the FLOPs).
"""
from __future__ import annotations

from typing import Annotated, Literal

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

from gankit.errors import ParamError
from gankit.models.layers import FP32Conv2d, FP32ConvTranspose2d
from gankit.registry import AT_LEAST_ONE, MODELS

Role = Literal["generator", "discriminator"]

# resolution -> (size of the first feature map, default multipliers). One multiplier per feature map, from the
# low-resolution end; the image itself is the last step and has C channels.
RESOLUTIONS: dict[int, tuple[int, tuple[int, ...]]] = {
    28: (7, (2, 1)),  # 7x7 -> 14x14 -> 28x28 (MNIST-sized)
    32: (4, (4, 2, 1)),  # 4x4 -> 8x8 -> 16x16 -> 32x32 (CIFAR-10)
    64: (4, (8, 4, 2, 1)),  # 4x4 -> 8x8 -> 16x16 -> 32x32 -> 64x64 (the DCGAN paper's LSUN/CelebA model)
}
CHANNELS = (1, 3)
_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU}


def check_data_shape(data_shape: tuple[int, ...]) -> tuple[int, int]:
    """(channels, resolution) of a (C, H, W) image shape that dcgan supports; ParamError otherwise."""
    shape = tuple(data_shape)
    if len(shape) != 3 or shape[0] not in CHANNELS or shape[1] != shape[2] or shape[1] not in RESOLUTIONS:
        sizes = ", ".join(f"{r}x{r}" for r in RESOLUTIONS)
        raise ParamError("name", f"is dcgan, which supports {sizes} images with 1 or 3 channels (data shape "
                                 f"(C, H, W)); got data shape {shape}")
    return shape[0], shape[1]


def stage_channels(resolution: int, width: int, multipliers: list[int] | None) -> tuple[int, list[int]]:
    """(s0, channels of each feature map from the s0 x s0 end) for a resolution; ParamError on a bad length."""
    s0, default = RESOLUTIONS[resolution]
    mults = list(default if multipliers is None else multipliers)
    n = len(default)
    if len(mults) != n:
        maps = ", ".join(f"{s0 * 2**i}x{s0 * 2**i}" for i in range(n))
        raise ParamError("multipliers", f"must have {n} entries for {resolution}x{resolution} images, one per "
                                        f"feature map ({maps}), e.g. {list(default)}; got {mults}")
    if any(m < 1 for m in mults):
        raise ParamError("multipliers", f"must all be >= 1, got {mults}")
    return s0, [width * m for m in mults]


def dcgan_init(model: nn.Module) -> None:
    """Radford et al.: conv / linear weights N(0, 0.02), biases 0; batch-norm scale N(1, 0.02), shift 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _finish(model: nn.Module, init: str, spectral_norm: bool) -> None:
    """Initialise, then (after the init, so the power iteration starts from the final weights) spectral norm."""
    if init == "dcgan":
        dcgan_init(model)
    if spectral_norm:
        for m in list(model.modules()):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                apply_spectral_norm(m)


class DCGANGenerator(nn.Module):
    """z [B, z_dim] -> images [B, C, R, R] in [-1, 1]."""

    def __init__(self, data_shape: tuple[int, ...], z_dim: int, width: int, multipliers: list[int] | None,
                 batch_norm: bool, activation: str, init: str, spectral_norm: bool) -> None:
        super().__init__()
        channels, resolution = check_data_shape(data_shape)
        s0, widths = stage_channels(resolution, width, multipliers)
        self.data_shape = (channels, resolution, resolution)
        self.z_dim = z_dim
        act = _ACTIVATIONS["relu" if activation == "auto" else activation]
        # z as a 1x1 map; an s0 x s0 kernel with no padding gives the s0 x s0 map (a linear layer).
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, widths[0], s0, 1, 0, bias=not batch_norm)]
        layers += [nn.BatchNorm2d(widths[0])] if batch_norm else []
        layers.append(act())
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not batch_norm))
            layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
            layers.append(act())
        layers += [FP32ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _finish(self, init, spectral_norm)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.reshape(z.shape[0], self.z_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """images [B, C, R, R] -> one raw score (logit) per sample, shape [B], fp32."""

    def __init__(self, data_shape: tuple[int, ...], width: int, multipliers: list[int] | None, batch_norm: bool,
                 activation: str, init: str, spectral_norm: bool) -> None:
        super().__init__()
        channels, resolution = check_data_shape(data_shape)
        s0, widths = stage_channels(resolution, width, multipliers)
        widths = widths[::-1]  # from the image end: R/2 x R/2 x width*m[-1] ... s0 x s0 x width*m[0]
        self.data_shape = (channels, resolution, resolution)
        act = (lambda: nn.LeakyReLU(0.2)) if activation == "auto" else _ACTIVATIONS[activation]
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), act()]  # never batch norm here
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm))
            layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
            layers.append(act())
        layers.append(FP32Conv2d(widths[-1], 1, s0, 1, 0))  # s0 x s0 map -> 1x1: a linear layer to the logit
        self.net = nn.Sequential(*layers)
        _finish(self, init, spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten()


@MODELS.register("dcgan", "DCGAN conv G or D for 28/32/64 px images: width x multipliers, batch norm, spectral norm")
def dcgan(
    role: Role,
    data_shape: tuple[int, ...],
    z_dim: int,
    *,
    width: Annotated[int, AT_LEAST_ONE] = 64,
    multipliers: list[Annotated[int, AT_LEAST_ONE]] | None = None,
    batch_norm: bool = True,
    spectral_norm: bool = False,
    activation: Literal["auto", "relu", "leaky_relu", "elu"] = "auto",
    init: Literal["dcgan", "default"] = "dcgan",
) -> DCGANGenerator | DCGANDiscriminator:
    """DCGAN generator or discriminator.

    width: base channel count; feature map i has width * multipliers[i] channels.
    multipliers: one per feature map from the low-resolution end; null = by resolution: [2, 1] at 28 px
        (7x7, 14x14), [4, 2, 1] at 32 px (4x4, 8x8, 16x16), [8, 4, 2, 1] at 64 px (4x4 ... 32x32).
    batch_norm: after every hidden (transposed) convolution; in D never after the first convolution. Turn it off
        in D for WGAN-GP and other gradient penalties (they need per-sample gradients) and for SNGAN.
    spectral_norm: W / sigma(W) on every convolution (Miyato et al. 2018), one power iteration per training
        forward; meant for D.
    activation: auto = ReLU in G, LeakyReLU(0.2) in D (the paper's choice).
    init: dcgan = weights N(0, 0.02), batch-norm scale N(1, 0.02); default = PyTorch's initialisation.
    """
    if role == "generator":
        return DCGANGenerator(data_shape, z_dim, width, multipliers, batch_norm, activation, init, spectral_norm)
    return DCGANDiscriminator(data_shape, width, multipliers, batch_norm, activation, init, spectral_norm)
