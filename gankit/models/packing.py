"""PacGAN's packing (Lin et al. 2018): D judges m samples at once, all real or all generated.

A pack of m samples is one input of D: for 2-D points the m points joined into one vector of 2m features, for
images the m images joined along the channels (as PacGAN's code does, ``concatenate(x_tildes, axis=1)``). The
discriminator model is built for the packed shape and wrapped here, so every model, loss and penalty works
unchanged: D's score has one entry per pack, and gradients reach each packed sample through the reshape.

``train.batch_size`` counts samples, so a batch of B samples is B / m packs (PacGAN's batch size of 100 counts
packs: PacGAN2's batch is 200 samples here).
"""
from __future__ import annotations

from torch import Tensor, nn

from gankit.models.conditional import DOutput


def packed_shape(data_shape: tuple[int, ...], pack: int) -> tuple[int, ...]:
    """The shape D sees: channels (or features) multiplied by the pack size."""
    return (data_shape[0] * pack, *data_shape[1:])


class PackedDiscriminator(nn.Module):
    """Reshapes a batch [B, C, ...] into [B / m, m * C, ...] (consecutive samples form a pack) and scores it."""

    def __init__(self, inner: nn.Module, pack: int) -> None:
        super().__init__()
        self.inner, self.pack = inner, pack

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | DOutput:
        b = x.shape[0]
        if b % self.pack:
            raise ValueError(f"a batch of {b} samples does not split into packs of {self.pack}")
        # [B, C, ...] -> [B/m, m, C, ...] -> [B/m, m*C, ...]: pack k holds samples k*m .. k*m + m - 1.
        packed = x.reshape(b // self.pack, self.pack * x.shape[1], *x.shape[2:])
        return self.inner(packed, y)

    def extra_repr(self) -> str:
        return f"pack={self.pack}"
