"""DiffAugment (Zhao et al., NeurIPS 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

Three differentiable transforms of images in [-1, 1], each with its own random draw per sample, applied to real
and generated images in D's and G's phases (the paper's rule: augment both, in both phases):

* color:       brightness x + (u - 0.5);  saturation (x - mean_c x) * 2u + mean_c x;  contrast
               (x - mean x) * (u + 0.5) + mean x   (u ~ U[0, 1) per sample for each; means per sample, mean_c over
               the channels at each pixel, mean over channels and pixels);
* translation: an integer shift of up to ``translation`` * size/2 ... in each axis (t ~ U{-s, ..., s} with
               s = round(ratio * size / 2) ... see ``translate``), the uncovered border filled with zeros;
* cutout:      a square of side round(``cutout`` * size) at a uniformly drawn centre set to zero.

With ``p`` < 1 (or an adaptive p, the ADA heuristic of Karras et al. 2020) each sample is augmented with
probability p and passed through unchanged otherwise; the paper's DiffAugment is p = 1.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.augment.base import AdaptiveProbability, Augmentation
from gankit.registry import AT_LEAST_ONE, AUGMENTATIONS, Range

Transform = Literal["color", "translation", "cutout"]


def _per_sample(x: Tensor) -> Tensor:
    """U[0, 1) numbers, one per sample, shaped to broadcast over [B, C, H, W]."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)


def color(x: Tensor) -> Tensor:
    x = x + (_per_sample(x) - 0.5)  # brightness
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (_per_sample(x) * 2) + mean_c  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample(x) + 0.5) + mean  # contrast


def translate(x: Tensor, ratio: float) -> Tensor:
    """Shift each image by (ty, tx), integers uniform in [-s, s] with s = int(ratio * size + 0.5) per axis (the
    paper's 1/8 of the image size), filling with zeros. A gather from the zero-padded batch keeps it
    differentiable with respect to x."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    tx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    # Output pixel (i, j) reads input pixel (i - ty, j - tx); outside the image it reads the zero padding.
    src_rows = (rows - ty + 1).clamp(0, h + 1).expand(b, h, w)
    src_cols = (cols - tx + 1).clamp(0, w + 1).expand(b, h, w)
    padded = F.pad(x, [1, 1, 1, 1])
    batch = torch.arange(b, device=x.device).view(b, 1, 1).expand(b, h, w)
    return padded.permute(0, 2, 3, 1)[batch, src_rows, src_cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float) -> Tensor:
    """Zero a square of side int(ratio * size + 0.5) centred at a uniformly drawn pixel (clipped at the border)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((rows - cy + ch // 2) >= 0) & ((rows - cy + ch // 2) < ch) \
        & ((cols - cx + cw // 2) >= 0) & ((cols - cx + cw // 2) < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class DiffAugment(Augmentation):
    kinds = ("image",)

    def __init__(self, policy: list[str], translation: float, cutout: float, probability: AdaptiveProbability) -> None:
        super().__init__()
        self.policy, self.translation, self.cutout = list(policy), translation, cutout
        self.probability = probability

    @property
    def stateful(self) -> bool:
        return self.probability.target is not None

    def transform(self, x: Tensor) -> Tensor:
        for name in self.policy:
            if name == "color":
                x = color(x)
            elif name == "translation":
                x = translate(x, self.translation)
            else:
                x = cutout(x, self.cutout)
        return x

    def forward(self, x: Tensor, step: int) -> Tensor:
        if self.probability.target is None and self.probability.value >= 1.0:
            return self.transform(x)  # the paper's DiffAugment: every sample, no mask drawn
        return torch.where(self.probability.mask(x), self.transform(x), x)

    def observe(self, real_logits: Tensor) -> None:
        self.probability.observe(real_logits)

    def extra_repr(self) -> str:
        return f"policy={self.policy}, translation={self.translation}, cutout={self.cutout}"


Probability = Annotated[float, Range(low=0, high=1)]


@AUGMENTATIONS.register("diffaugment", "DiffAugment: color, translation, cutout on real and fake, Zhao et al. 2020; "
                                       "optional adaptive p (ADA heuristic, Karras et al. 2020)")
def diffaugment(*, policy: list[Transform] = ("color", "translation", "cutout"),
                translation: Annotated[float, Range(low=0, high=0.5)] = 0.125,
                cutout: Annotated[float, Range(low=0, high=1, low_open=True)] = 0.5, p: Probability = 1.0,
                target: Annotated[float, Range(low=-1, high=1)] | None = None,
                interval: Annotated[int, AT_LEAST_ONE] = 4,
                speed_images: Annotated[int, AT_LEAST_ONE] = 500_000) -> Augmentation:
    """policy: the transforms, in order. translation: the largest shift as a fraction of the image size (1/8).
    cutout: the square's side as a fraction of the image size (1/2). p: the probability that a sample is augmented
    (1: always, as the paper; the start value when adaptive). target: ADA's target for E[sign(D(real))] (0.6 in
    the paper); null keeps p fixed. interval: D steps between adjustments of p. speed_images: real images over
    which p can move from 0 to 1 (500k in the paper)."""
    return DiffAugment(list(policy), translation, cutout, AdaptiveProbability(p, target, interval, speed_images))
