"""Data held as one tensor on the training device; batches are drawn there by random indices."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class InMemoryData:
    """A dataset that fits in device memory. ``info`` carries what metrics need (e.g. a toy mixture's means)."""

    x: Tensor
    kind: str  # "toy" or "image": picks the metrics and figures
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> "InMemoryData":
        info = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.info.items()}
        return InMemoryData(self.x.to(device), self.kind, info)

    def sample(self, batch_size: int) -> Tensor:
        # Sampling with replacement on the device: no DataLoader, no host round trip.
        idx = torch.randint(len(self), (batch_size,), device=self.x.device)
        return self.x[idx]
