"""``stacked_modes``: mode coverage and KL to uniform of a Stacked MNIST generator (1,000 modes).

Protocol of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018, Table 2), as coded in fjxmlzn/PacGAN
``stacked_MNIST_experiments/VEEGAN_experiment/model.py`` (``log_metrics``): N generated samples (PacGAN: 26,000,
``num_test_sample``); each of the three channels is classified as an MNIST digit by a pretrained classifier
(PacGAN: a Keras CNN, ``train_mnist.py``; here gankit's shipped MNIST classifier); the sample's mode is the digit
triple, ``100 * d0 + 10 * d1 + d2``;

* ``modes`` = the number of distinct triples among the N samples (at most 1,000);
* ``kl_to_uniform`` = KL(p || uniform) = sum_m p_m log(1000 p_m), p the histogram of the N triples
  (0 when every mode is equally frequent, log 1000 = 6.91 when one mode takes everything).

Generated images are quantized to uint8 as when saved to PNG, like every gankit image metric; a channel that is
not 28x28 is resized to 28x28 (antialiased bilinear, then rounded) before the classifier sees it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.errors import GankitError
from gankit.metrics.base import CHANNEL_DIGITS, Metric, MetricInputs, register_metric
from gankit.metrics.extractors import Extractor, classifier

N_MODES = 1000
PACGAN_N_SAMPLES = 26_000  # fjxmlzn/PacGAN stacked_MNIST_experiments/VEEGAN_experiment/config.py: num_test_sample
CLASSIFIER_SIDE = 28


def check_stacked_shape(shape: tuple[int, ...], what: str) -> None:
    """stacked_modes reads one digit per channel: 3-channel images only; a one-line GankitError otherwise."""
    shape = tuple(shape)
    if len(shape) != 3 or shape[0] != 3:
        raise GankitError(f"stacked_modes needs 3-channel images (one MNIST digit per channel, data: stacked_mnist); "
                          f"{what} are {'x'.join(map(str, shape))}; leave stacked_modes out")


def digit_classifier(device: torch.device | str) -> Extractor:
    """gankit's shipped MNIST classifier, the one that reads each channel."""
    return classifier("mnist", torch.device(device))


@torch.no_grad()
def channel_digits(clf: Extractor, images: Tensor) -> Tensor:
    """uint8 [B, 3, H, W] -> the classifier's digit for each channel, long [B, 3]."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise GankitError(f"stacked_modes needs 3-channel images; got a batch of shape {tuple(images.shape)}")
    b, _, h, w = images.shape
    x = images.reshape(b * 3, 1, h, w)
    if (h, w) != (CLASSIFIER_SIDE, CLASSIFIER_SIDE):
        x = F.interpolate(x.float(), size=(CLASSIFIER_SIDE, CLASSIFIER_SIDE), mode="bilinear", antialias=True,
                          align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
    return clf(x)[1].argmax(1).view(b, 3)


def mode_counts(digits: Tensor) -> Tensor:
    """Digit triples [N, 3] -> how often each mode 100 * d0 + 10 * d1 + d2 occurs (long [1000])."""
    d = digits.long()
    return torch.bincount((d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]).cpu(), minlength=N_MODES)


def mode_histogram(digits: Tensor) -> dict[str, Any]:
    """Digit triples [N, 3] -> modes covered, KL(p || uniform over 1000), the ``top`` most frequent modes with
    their counts (mode "042": digits 0, 4, 2) and each channel's 10-bin digit histogram. (The whole 1000-bin
    histogram is ``mode_counts(digits)``.)"""
    digits = digits.long().cpu()
    counts = mode_counts(digits).double()
    p = counts / counts.sum().clamp_min(1)
    kl = torch.where(p > 0, p * torch.log(N_MODES * p), torch.zeros_like(p)).sum()
    top = torch.argsort(counts, descending=True, stable=True)[:10]
    return {"modes": int((counts > 0).sum()), "kl_to_uniform": float(kl), "n_modes": N_MODES,
            "max_kl": math.log(N_MODES), "n": int(len(digits)),
            "top_modes": {f"{m:03d}": int(counts[m]) for m in top.tolist() if counts[m] > 0},
            "channel_digit_histograms": [torch.bincount(digits[:, c], minlength=10).tolist() for c in range(3)]}


def stacked_result(digits: Tensor, clf: Extractor, protocol: dict[str, Any]) -> dict[str, Any]:
    """{"value": mode_histogram(digits), "protocol": ...} for classified digit triples [N, 3]."""
    return {"value": mode_histogram(digits), "protocol": {
        "classifier": clf.describe, "classifier_test_accuracy": clf.extra.get("test_accuracy"),
        "mode": "100*d0 + 10*d1 + d2, d_c = argmax of the MNIST classifier on channel c",
        "channels": f"each channel classified as a 1x{CLASSIFIER_SIDE}x{CLASSIFIER_SIDE} digit (other sizes "
                    "resized: antialiased bilinear)",
        "kl": "KL(p || uniform over 1000 modes), natural log",
        "paper_protocol": f"PacGAN Table 2: n = {PACGAN_N_SAMPLES}, a Keras MNIST CNN (not this classifier)",
        **protocol}}


def stacked_modes(generate: Callable[[int], Tensor], n: int = PACGAN_N_SAMPLES, *,
                  device: torch.device | str | None = None, batch_size: int = 250,
                  protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stacked_modes metric of ``n`` samples of ``generate(k)`` (k images, float [-1, 1], 3 x H x W), without
    a reference data set (``compute_metrics`` computes it alongside the other metrics)."""
    from gankit.metrics.compute import _generated

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GankitError(f"stacked_modes needs n >= 1 samples, got {n!r}")
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available()
                                                                          else "cpu")
    clf = digit_classifier(device)
    parts = []
    for batch in _generated(generate, n, batch_size, device, None, "data"):
        check_stacked_shape(tuple(batch.shape[1:]), "the generated images")
        parts.append(channel_digits(clf, batch))
    common = {"n_generated": n, "generated_images": "float [-1, 1] quantized to uint8 as when saved to PNG",
              **(protocol or {})}
    return stacked_result(torch.cat(parts), clf, common)


@register_metric
class StackedModes(Metric):
    name = "stacked_modes"
    help = "Stacked MNIST: digit triples (one MNIST classification per channel) covered of 1000, KL to uniform"
    higher_is_better = False  # its scalar is the KL to uniform
    needs = (CHANNEL_DIGITS,)

    def check_run(self, exp: Any) -> None:
        check_stacked_shape(tuple(exp.data.shape), f"this run's '{exp.cfg.data['name']}' images")

    def compute(self, inputs: MetricInputs) -> dict[str, Any]:
        return stacked_result(inputs.generated[CHANNEL_DIGITS], inputs.extractors["digits"], inputs.common)

    def scalar(self, value: Any) -> float:
        return float(value["kl_to_uniform"])
