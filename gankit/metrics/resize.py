"""The resize protocols of the Inception metrics (``eval.protocol``).

* ``legacy``: uint8 images go to torch-fidelity's Inception-v3 at their own size; the network resizes them to
  299x299 with TensorFlow 1's bilinear interpolation (no antialiasing). The numbers compare with the reference
  repositories' (torch-fidelity, the TF FID code).
* ``clean`` (Parmar et al., CVPR 2022, "On Aliased Resizing and Surprising Subtleties in GAN Evaluation";
  GaParmar/clean-fid ``build_resizer("clean")``): each uint8 image is resized to 299x299 per channel as a float32
  image (PIL mode "F") with PIL's bicubic filter, clipped to [0, 255] and not quantized again; the network's own
  resize is skipped.

PIL's resampling is separable: each output pixel is a normalised weighted sum of the input pixels within
``support * max(scale, 1)`` of its centre, ``scale = in / out``; with the Keys cubic kernel (a = -0.5), support 2,
widened by ``scale`` when shrinking (antialiasing). Here the two passes are two matrix products on the images'
device (float64 accumulation, the intermediate image rounded to float32 as PIL stores it), so the clean protocol
costs no CPU round trip; tests check the result against PIL itself.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

ResizeProtocol = Literal["legacy", "clean"]
RESIZE_PROTOCOLS: tuple[str, ...] = ("legacy", "clean")
INCEPTION_SIDE = 299
BICUBIC_A = -0.5  # PIL's bicubic kernel parameter
BICUBIC_SUPPORT = 2.0

RESIZE_NOTES = {
    "legacy": "legacy: uint8 images resized to 299x299 inside torch-fidelity's network (TF1 bilinear, no "
              "antialiasing)",
    "clean": "clean (Parmar et al. 2022): each channel resized to 299x299 as float32 by PIL-bicubic (antialiased), "
             "clipped to [0, 255], not re-quantized; no resize inside the network",
}


def _keys_cubic(x: Tensor) -> Tensor:
    """The bicubic convolution kernel with a = -0.5 (PIL's), on |x|."""
    x = x.abs()
    a = BICUBIC_A
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def pil_bicubic_weights(in_size: int, out_size: int, device: torch.device | str = "cpu") -> Tensor:
    """[out_size, in_size] float64 matrix W with ``resized = W @ signal`` for PIL's bicubic resampling of a 1-D
    signal (the whole image as the box): output pixel j is centred at ``(j + 0.5) * scale`` in input coordinates,
    the kernel is stretched by ``max(scale, 1)``, and each row is normalised to sum to 1."""
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    support = BICUBIC_SUPPORT * stretch
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for j in range(out_size):
        centre = (j + 0.5) * scale
        # PIL truncates toward zero (a C cast) and clamps to the image
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), in_size)
        taps = torch.arange(first, last, dtype=torch.float64)
        k = _keys_cubic((taps - centre + 0.5) / stretch)
        total = float(k.sum())
        weights[j, first:last] = k / total if total != 0.0 else k
    return weights.to(device)


_WEIGHTS: dict[tuple[int, int, str], Tensor] = {}


def _weights(in_size: int, out_size: int, device: torch.device) -> Tensor:
    key = (in_size, out_size, str(device))
    if key not in _WEIGHTS:
        _WEIGHTS[key] = pil_bicubic_weights(in_size, out_size, device)
    return _WEIGHTS[key]


@torch.no_grad()
def clean_resize(images: Tensor, size: int = INCEPTION_SIDE, chunk: int = 64) -> Tensor:
    """uint8 (or float) NCHW images in [0, 255] -> float32 [N, C, size, size]: PIL-bicubic in mode "F" per channel
    (horizontal pass, then vertical), clipped to [0, 255], as clean-fid's clean protocol."""
    n, c, h, w = images.shape
    along_width = _weights(w, size, images.device)  # [size, w]
    along_height = _weights(h, size, images.device)  # [size, h]
    out = torch.empty(n, c, size, size, dtype=torch.float32, device=images.device)
    for start in range(0, n, chunk):  # float64 intermediates of a 50,000-image batch would not fit
        x = images[start:start + chunk].to(torch.float64)
        rows = (x @ along_width.T).to(torch.float32).to(torch.float64)  # PIL keeps the intermediate in float32
        out[start:start + chunk] = (along_height @ rows).clamp_(0, 255).to(torch.float32)
    return out
