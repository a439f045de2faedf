"""Data held as one tensor on the training device; batches are drawn there by random indices.

Images are stored as uint8 NCHW (a quarter of the memory of float32; MNIST is 47 MB, CIFAR-10 150 MB) and
converted per batch on the device to float in [-1, 1], the range of G's tanh output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor


def to_unit_range(x: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1]; float data passes through unchanged."""
    return x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x


def to_unit_range_dequantized(x: Tensor) -> Tensor:
    """uint8 [0, 255] -> x / 128 - 1 + U(0, 1/128): [-1, 1) with uniform noise over each quantization step, as the
    SNGAN authors' CIFAR-10 loader (pfnet-research/sngan_projection, datasets/cifar10.py) feeds D."""
    x = x.float().div_(128.0).sub_(1.0)
    return x.add_(torch.rand_like(x).div_(128.0))


def to_uint8(x: Tensor) -> Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding to nearest (the inverse of to_unit_range up to rounding)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)


class Batch(NamedTuple):
    """A batch of data: samples in the model's range, and their class indices [B] when the data has labels."""

    x: Tensor
    y: Tensor | None


def count_classes(info: dict[str, Any], labels: Tensor | None) -> int:
    """The number of classes of labelled data (0 without labels): the named classes, else the largest label + 1."""
    if labels is None or len(labels) == 0:
        return 0
    if info.get("classes"):
        return len(info["classes"])
    return int(labels.max()) + 1


def class_frequencies(labels: Tensor, n_classes: int) -> Tensor:
    """The fraction of examples of each class (float [K])."""
    return torch.bincount(labels.long().flatten(), minlength=n_classes).float() / len(labels)


def flip_half(batch: Tensor) -> Tensor:
    """Flip each image horizontally with probability 1/2 (on the batch's device, no host sync)."""
    flip = torch.rand(batch.shape[0], 1, 1, 1, device=batch.device) < 0.5
    return torch.where(flip, batch.flip(-1), batch)


@dataclass
class InMemoryData:
    """A dataset that fits in device memory.

    ``kind`` is "toy" (float points) or "image" (uint8 NCHW). ``labels`` are class indices when the data has
    them. ``info`` carries what metrics and figures need (a toy mixture's means and std; class names).
    ``hflip`` flips half of each image batch horizontally; ``dequantize`` converts image batches with
    ``to_unit_range_dequantized`` instead of ``to_unit_range``.
    """

    x: Tensor
    kind: str
    info: dict[str, Any] = field(default_factory=dict)
    labels: Tensor | None = None
    hflip: bool = False
    dequantize: bool = False
    in_memory: ClassVar[bool] = True  # one tensor on the device (a study can stack its seeds over it)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def n_classes(self) -> int:
        return count_classes(self.info, self.labels)

    def to(self, device: torch.device) -> "InMemoryData":
        info = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.info.items()}
        labels = self.labels.to(device) if self.labels is not None else None
        return InMemoryData(self.x.to(device), self.kind, info, labels, self.hflip, self.dequantize)

    def sample(self, batch_size: int) -> Batch:
        """batch_size examples drawn with replacement, and their labels (None for unlabelled data)."""
        # On the device: no DataLoader, no host round trip.
        idx = torch.randint(len(self), (batch_size,), device=self.x.device)
        batch = (to_unit_range_dequantized if self.dequantize else to_unit_range)(self.x[idx])
        if self.hflip:
            batch = flip_half(batch)
        return Batch(batch, self.labels[idx] if self.labels is not None else None)

    def real_batch(self, n: int) -> Tensor:
        """The first n examples in the model's range, for figures and metrics."""
        return to_unit_range(self.x[:n])
