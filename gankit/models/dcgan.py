"""DCGAN (Radford, Metz & Chintala, ICLR 2016) for 28, 32 and 64 pixel images, with optional spectral norm and
class conditioning.

G: z -> (s0 x s0 x width*m[0]) -> ... -> (R/2 x R/2 x width*m[-1]) -> R x R x C, where every step doubles the
resolution with a 4x4 stride-2 transposed convolution, followed by batch norm and ReLU; tanh on the image.
s0 is 4 at 32 and 64 pixels, 7 at 28 pixels. The first step (z -> s0 x s0) is a transposed convolution from a
1x1 map with an s0 x s0 kernel, i.e. a linear layer whose output is read as a feature map.

D mirrors G: 4x4 stride-2 convolutions halve the resolution, LeakyReLU(0.2), batch norm on every convolution
except the first (as in the paper; switch it off for WGAN-GP and other gradient penalties, and for SNGAN), and a
final s0 x s0 convolution over the whole s0 x s0 map (a linear layer) gives one logit per sample.

``width: 256, multipliers: [4, 2, 1]`` at 32 pixels is the reference CIFAR-10 "SimpleCNN" recipe:
G: z -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x3, and D the mirror image.

Conditioning (``model.conditional: true``), as the reference conditional CIFAR-10 models
(xyfJASON/GANs-Implementations ``models/simple_cnn_cond.py``):

* G ``concat``: the one-hot class joined to z, so the first transposed convolution has z_dim + K inputs (CGAN);
  G ``cbn``: every batch norm of G is a conditional batch norm (no affine part of its own; per-class scale and
  shift, initialised to 1 and 0, so it starts as a plain batch norm), z alone is the input;
* D ``concat``: the class as K constant one-hot planes joined to the image channels (C + K input channels);
  D ``projection`` (Miyato & Koyama 2018): with phi(x) the last hidden s0 x s0 map (after its activation),
  logit = final_conv(phi) + <embed(y), sum over the s0 x s0 positions of phi>: the class term uses
  globally sum-pooled features, as the paper's ResNet discriminators do (the unconditional term keeps DCGAN's
  s0 x s0 convolution, a linear layer on the whole map);
* D ``class_head`` (ACGAN): class logits from phi by an s0 x s0 convolution to K channels, beside the logit's
  own s0 x s0 convolution (the reference ACGAN's ``cls_head``); D then returns a ``DOutput``.
* D ``q_head`` (InfoGAN, ``model.codes``): Q's outputs from phi by a linear layer over the whole s0 x s0 map
  (the reference InfoGAN's ``c_disc_head``/``c_cont_head`` 4x4 convolutions, as one layer), optionally through
  a hidden layer (``q_hidden``); see gankit.models.conditional.QHead.

``spectral_norm`` also normalises the projection embedding and the class head.

Precision: under bf16 autocast the hidden layers (all the FLOPs) run in bf16; G's output layer and D's output
layers (logit, class head, projection term) compute in fp32, so G's samples and D's logits are fp32 tensors.
"""
from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
import functools
from typing import Annotated, Literal

import torch
from torch import Tensor, nn

from gankit.errors import ParamError
from gankit.prior import CodeSpec
from gankit.models.conditional import (ConditionalBatchNorm, DCondition, DOutput, GCondition, ProjectionHead, QHead,
                                       check_q_head, label_planes, one_hot, q_outputs, resolve_condition)
from gankit.models.spectral import spectral_norm as apply_spectral_norm
from gankit.models.layers import FP32Conv2d, FP32ConvTranspose2d
from gankit.models.layers import activation as make_activation
from gankit.registry import AT_LEAST_ONE, FRACTION, MODELS, NON_NEGATIVE

Role = Literal["generator", "discriminator"]

# resolution -> (size of the first feature map, default multipliers). One multiplier per feature map, from the
# low-resolution end; the image itself is the last step and has C channels.
RESOLUTIONS: dict[int, tuple[int, tuple[int, ...]]] = {
    28: (7, (2, 1)),  # 7x7 -> 14x14 -> 28x28 (MNIST-sized)
    32: (4, (4, 2, 1)),  # 4x4 -> 8x8 -> 16x16 -> 32x32 (CIFAR-10)
    64: (4, (8, 4, 2, 1)),  # 4x4 -> 8x8 -> 16x16 -> 32x32 -> 64x64 (the DCGAN paper's LSUN/CelebA model)
}


def check_data_shape(data_shape: tuple[int, ...]) -> tuple[int, int]:
    """(channels, resolution) of a (C, H, W) image shape that dcgan supports; ParamError otherwise."""
    shape = tuple(data_shape)
    # Any channel count: a packed D (model.pack: m) sees m * C channels.
    if len(shape) != 3 or shape[0] < 1 or shape[1] != shape[2] or shape[1] not in RESOLUTIONS:
        sizes = ", ".join(f"{r}x{r}" for r in RESOLUTIONS)
        raise ParamError("name", f"is dcgan, which supports {sizes} images (square, data shape (C, H, W)); got "
                                 f"data shape {shape}")
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
    """Radford et al.: conv / linear weights N(0, 0.02), biases 0; batch-norm scale N(1, 0.02), shift 0.
    A conditional batch norm's per-class scale and shift keep their 1 and 0 (as in the reference), and the
    projection embedding its Xavier initialisation."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _finish(model: nn.Module, init: str, spectral_norm: bool) -> None:
    """Initialise, then (after the init, so the power iteration starts from the final weights) spectral norm:
    on every (transposed) convolution and linear layer, and on a projection embedding."""
    if init == "dcgan":
        dcgan_init(model)
    if spectral_norm:
        for m in list(model.modules()):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                apply_spectral_norm(m)
            elif isinstance(m, ProjectionHead):
                apply_spectral_norm(m.embed)


def _run(layers: Iterable[nn.Module], x: Tensor, y: Tensor | None) -> Tensor:
    """The layers in order; a conditional batch norm also gets the labels."""
    for layer in layers:
        x = layer(x, y) if isinstance(layer, ConditionalBatchNorm) else layer(x)
    return x


class DCGANGenerator(nn.Module):
    """z [B, z_dim] (and class indices y [B]) -> images [B, C, R, R] in [-1, 1].

    ``net`` holds the layers in order (transposed convolution, [conditional] batch norm, activation, ...), with
    the indices of the former nn.Sequential, so unconditional checkpoints keep their names."""

    def __init__(self, data_shape: tuple[int, ...], z_dim: int, width: int, multipliers: list[int] | None,
                 batch_norm: bool, activation: str, init: str, spectral_norm: bool, n_classes: int = 0,
                 condition: str = "none", leaky_slope: float = 0.2) -> None:
        super().__init__()
        channels, resolution = check_data_shape(data_shape)
        s0, widths = stage_channels(resolution, width, multipliers)
        self.data_shape = (channels, resolution, resolution)
        self.z_dim, self.n_classes, self.condition = z_dim, n_classes, condition
        self.uses_labels = condition != "none"
        act = functools.partial(make_activation, "relu" if activation == "auto" else activation, leaky_slope)

        def norm(c: int) -> list[nn.Module]:
            if not batch_norm:
                return []
            return [ConditionalBatchNorm(c, n_classes) if condition == "cbn" else nn.BatchNorm2d(c)]

        # z (and one-hot y) as a 1x1 map; an s0 x s0 kernel with no padding gives the s0 x s0 map (a linear layer).
        z_in = z_dim + (n_classes if condition == "concat" else 0)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_in, widths[0], s0, 1, 0, bias=not batch_norm)]
        layers += norm(widths[0])
        layers.append(act())
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not batch_norm))
            layers += norm(c_out)
            layers.append(act())
        layers += [FP32ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.ModuleList(layers)
        _finish(self, init, spectral_norm)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.uses_labels and y is None:
            raise ValueError("this generator is conditional: call it with class labels y")
        if self.condition == "concat":
            z = torch.cat([z.reshape(z.shape[0], -1), one_hot(y, self.n_classes, z.dtype)], dim=1)
        return _run(self.net, z.reshape(z.shape[0], -1, 1, 1), y)


class DCGANDiscriminator(nn.Module):
    """images [B, C, R, R] (and class indices y [B]) -> one raw score (logit) per sample, shape [B], fp32; with a
    class head, a DOutput whose heads["class"] holds the class logits [B, K] (fp32).

    ``net`` holds the layers in order, the final s0 x s0 convolution to the logit last (the indices of the
    former nn.Sequential); ``projection`` and ``class_head`` read the last hidden map, net[:-1](x)."""

    def __init__(self, data_shape: tuple[int, ...], width: int, multipliers: list[int] | None, batch_norm: bool,
                 activation: str, init: str, spectral_norm: bool, n_classes: int = 0, condition: str = "none",
                 with_class_head: bool = False, q_hidden: int | None = None, leaky_slope: float = 0.2) -> None:
        super().__init__()
        channels, resolution = check_data_shape(data_shape)
        s0, widths = stage_channels(resolution, width, multipliers)
        widths = widths[::-1]  # from the image end: R/2 x R/2 x width*m[-1] ... s0 x s0 x width*m[0]
        self.data_shape = (channels, resolution, resolution)
        self.n_classes, self.condition = n_classes, condition
        self.uses_labels = condition != "none"
        act = functools.partial(make_activation, "leaky_relu" if activation == "auto" else activation, leaky_slope)
        c_in = channels + (n_classes if condition == "concat" else 0)
        layers: list[nn.Module] = [nn.Conv2d(c_in, widths[0], 4, 2, 1), act()]  # never batch norm here
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm))
            layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
            layers.append(act())
        layers.append(FP32Conv2d(widths[-1], 1, s0, 1, 0))  # s0 x s0 map -> 1x1: a linear layer to the logit
        self.net = nn.ModuleList(layers)
        self.projection = ProjectionHead(widths[-1], n_classes) if condition == "projection" else None
        # ACGAN's class head: like the logit, an s0 x s0 convolution over the last hidden map (in fp32).
        self.class_head = FP32Conv2d(widths[-1], n_classes, s0, 1, 0) if with_class_head else None
        # InfoGAN's Q head: attached by the experiment once the codes are known (attach_q_head).
        self.q_hidden, self.q_head = q_hidden, None
        self._q_features, self._init, self._spectral_norm = widths[-1] * s0 * s0, init, spectral_norm
        _finish(self, init, spectral_norm)

    def attach_q_head(self, codes: "CodeSpec") -> None:
        """Give D the Q head of ``codes`` (requested with q_head: true), initialised like the rest of D."""
        head = QHead(self._q_features, codes, self.q_hidden or 0)
        _finish(head, self._init, self._spectral_norm)
        self.q_head = head.to(next(self.parameters()).device)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | DOutput:
        if self.uses_labels and y is None:
            raise ValueError("this discriminator is conditional: call it with class labels y")
        if self.condition == "concat":
            x = torch.cat([x, label_planes(y, self.n_classes, x)], dim=1)
        h = _run(islice(self.net, len(self.net) - 1), x, y)  # phi(x): the last hidden s0 x s0 map
        logit = self.net[-1](h).flatten()
        if self.projection is not None:
            # global sum pooling of phi, in fp32 (a sum over s0 x s0 positions)
            logit = logit + self.projection(h.float().sum(dim=(2, 3)), y)
        # The class head is an s0 x s0 conv: [B, K, 1, 1].
        heads = {} if self.class_head is None else {"class": self.class_head(h).flatten(1)}
        heads.update(q_outputs(self.q_head, h))
        return DOutput(logit, heads) if heads else logit


AUTO = {"generator": "concat", "discriminator": "concat"}  # the reference CGAN
ALLOWED = {"generator": ("none", "concat", "cbn"), "discriminator": ("none", "concat", "projection")}


@MODELS.register("dcgan", "DCGAN conv G or D for 28/32/64 px images: width x multipliers, batch norm, spectral "
                          "norm, class conditioning")
def dcgan(
    role: Role,
    data_shape: tuple[int, ...],
    z_dim: int,
    n_classes: int = 0,
    *,
    width: Annotated[int, AT_LEAST_ONE] = 64,
    multipliers: list[Annotated[int, AT_LEAST_ONE]] | None = None,
    batch_norm: bool = True,
    spectral_norm: bool = False,
    activation: Literal["auto", "relu", "leaky_relu", "elu"] = "auto",
    leaky_slope: Annotated[float, FRACTION] = 0.2,
    init: Literal["dcgan", "default"] = "dcgan",
    condition: GCondition | DCondition = "auto",
    class_head: bool = False,
    q_head: bool = False,
    q_hidden: Annotated[int, NON_NEGATIVE] = 0,
) -> DCGANGenerator | DCGANDiscriminator:
    """DCGAN generator or discriminator.

    width: base channel count; feature map i has width * multipliers[i] channels.
    multipliers: one per feature map from the low-resolution end; null = by resolution: [2, 1] at 28 px
        (7x7, 14x14), [4, 2, 1] at 32 px (4x4, 8x8, 16x16), [8, 4, 2, 1] at 64 px (4x4 ... 32x32).
    batch_norm: after every hidden (transposed) convolution; in D never after the first convolution. Turn it off
        in D for WGAN-GP and other gradient penalties (they need per-sample gradients) and for SNGAN.
    spectral_norm: W / sigma(W) on every convolution (Miyato et al. 2018), one power iteration per training
        forward, and on D's projection embedding and class head; meant for D.
    activation: auto = ReLU in G, LeakyReLU in D (the paper's choice).
    leaky_slope: LeakyReLU's negative slope (0.2, the paper's; torch's default is 0.01).
    init: dcgan = weights N(0, 0.02), batch-norm scale N(1, 0.02); default = PyTorch's initialisation.
    condition (conditional runs): auto = concat (D with a class head: none, as ACGAN); G: concat (one-hot y
        joined to z) or cbn (conditional batch norms; needs batch_norm); D: concat (one-hot planes joined to the
        image channels) or projection (+ <embed(y), sum-pooled last hidden map>).
    class_head: D only: class logits from the last hidden map (ACGAN).
    q_head: D only: InfoGAN's Q head on the last hidden map, sized by model.codes.
    q_hidden: units of a hidden layer in the Q head (linear, batch norm, LeakyReLU); 0: none.
    """
    condition = resolve_condition("dcgan", role, condition, n_classes, class_head, auto=AUTO, allowed=ALLOWED,
                                  batch_norm=batch_norm)
    check_q_head(role, q_head, q_hidden)
    if role == "generator":
        return DCGANGenerator(data_shape, z_dim, width, multipliers, batch_norm, activation, init, spectral_norm,
                              n_classes, condition, leaky_slope)
    return DCGANDiscriminator(data_shape, width, multipliers, batch_norm, activation, init, spectral_norm,
                              n_classes, condition, class_head, q_hidden if q_head else None, leaky_slope)
