"""Mode-collapse metrics for 2-D Gaussian mixtures (the PacGAN / VEEGAN protocol).

For N generated samples and a mixture with K means mu_k and standard deviation s:
* each sample's mode is its nearest mean; it is *high quality* when ||x - mu_k|| / s < 3;
* ``modes``: the number of means that are the nearest mean of at least one high-quality sample;
* ``high_quality``: the fraction of high-quality samples;
* ``reverse_kl``: KL(p || uniform) = sum_k p_k log(K p_k) of the nearest-mode histogram p of all samples
  (0 log 0 = 0), which is 0 when the modes are hit equally often and log K when one mode takes everything.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def toy_metrics(samples: Tensor, means: Tensor, std: float, threshold: float = 3.0) -> dict[str, float | int]:
    samples = samples.detach().float().reshape(len(samples), -1)
    means = means.to(samples.device, torch.float32)
    dist = torch.cdist(samples, means)  # [N, K]
    nearest_dist, nearest = dist.min(dim=1)
    finite = torch.isfinite(samples).all(dim=1)
    high_quality = finite & (nearest_dist / std < threshold)
    k = len(means)
    covered = torch.bincount(nearest[high_quality], minlength=k) > 0
    hist = torch.bincount(nearest[finite], minlength=k).double()
    p = hist / hist.sum().clamp_min(1)
    reverse_kl = torch.where(p > 0, p * torch.log(k * p), torch.zeros_like(p)).sum()
    return {
        "modes": int(covered.sum()),
        "n_modes": k,
        "high_quality": float(high_quality.double().mean()),
        "reverse_kl": float(reverse_kl) if finite.any() else math.log(k),
    }
