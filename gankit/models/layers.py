"""Layers shared by the models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def activation(name: str, leaky_slope: float = 0.2) -> nn.Module:
    """A hidden layer's nonlinearity by name; ``leaky_slope`` is LeakyReLU's negative slope (0.2: the DCGAN
    paper's; some reference code uses torch's default 0.01)."""
    if name == "leaky_relu":
        return nn.LeakyReLU(leaky_slope)
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}[name]()


def image_output(a: Tensor, output: str) -> Tensor:
    """G's last activation. The engine's images live in [-1, 1]; ``sigmoid`` is the image sigmoid(a) in [0, 1]
    of code that trains on ToTensor() pixels, handed on as 2 * sigmoid(a) - 1 so that data, grids and metrics
    keep one convention (a D with ``unit_pixels`` reads it back as sigmoid(a))."""
    if output == "tanh":
        return a.tanh()
    if output == "sigmoid":
        return a.sigmoid() * 2 - 1
    return a


def unit_pixels(x: Tensor) -> Tensor:
    """[-1, 1] pixels as the [0, 1] pixels that code without Normalize((0.5,), (0.5,)) feeds its D."""
    return (x + 1) / 2


def reference_init(module: nn.Module) -> None:
    """xyfJASON/GANs-Implementations' ``init_weights(None)``, which every network there gets: PyTorch's default
    weights, zero biases for linear and convolution layers, batch-norm scales N(1, 0.02^2) and zero shifts."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class FP32Linear(nn.Linear):
    """A linear layer that computes in its weights' dtype (fp32), also inside a bf16 autocast region.

    Used where precision matters and FLOPs do not: D's input layer (bf16 would round a sample to 8 bits of
    mantissa, coarser than the 0.01 std of the ring's modes), G's output layer (the samples) and D's output
    layer (the logits the losses see). The hidden layers, where the FLOPs are, run in bf16.
    """

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.to(self.weight.dtype), self.weight, self.bias)


class FP32Conv2d(nn.Conv2d):
    """A convolution that computes in its weights' dtype (fp32), also inside a bf16 autocast region (D's logits)."""

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self._conv_forward(x.to(self.weight.dtype), self.weight, self.bias)


class FP32ConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution in its weights' dtype (fp32), also inside a bf16 autocast region (G's samples)."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        with torch.autocast(x.device.type, enabled=False):
            return F.conv_transpose2d(x.to(self.weight.dtype), self.weight, self.bias, self.stride, self.padding,
                                      self.output_padding, self.groups, self.dilation)
