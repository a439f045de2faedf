"""The feature extractors metrics read from (*sources*): each is built once per ``compute_metrics`` call when some
requested metric needs one of its streams, checks that the data suits it, maps a uint8 batch to its outputs, and
adds its own entries to a metric's protocol."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.errors import GankitError
from gankit.metrics.extractors import Extractor, build_extractor, classifier


@dataclass(frozen=True)
class SourceRequest:
    """What building a source may use: the reference dataset spec and the extractor options of compute_metrics."""

    spec: dict[str, Any]
    device: torch.device
    extractor: str
    inception_weights: str | Path | None
    download: bool
    resize_protocol: str


@dataclass(frozen=True)
class Source:
    name: str
    build: Callable[[SourceRequest], Extractor]
    run: Callable[[Extractor, Tensor], dict[str, Tensor]]
    # (reference spec, reference image shape, the metrics asking, reference label) -> raise a one-line GankitError
    check_data: Callable[[dict[str, Any], tuple[int, ...], list[str], str], None]
    protocol_head: Callable[[Extractor], dict[str, Any]]


def _features_and_logits(ext: Extractor, batch: Tensor) -> dict[str, Tensor]:
    features, logits = ext(batch)
    return {"features": features, "logits": logits}


def _no_check(spec: dict[str, Any], shape: tuple[int, ...], names: list[str], label: str) -> None:
    return None


def _inception_head(ext: Extractor) -> dict[str, Any]:
    return {"resize_protocol": ext.resize_protocol, "resize": ext.resize_note}


def check_classifier_shape(shape: tuple[int, ...], what: str, names: list[str] | None = None) -> None:
    from gankit.metrics.classifier import INPUT_SHAPE

    if tuple(shape) != INPUT_SHAPE:
        asking = ", ".join(names) if names else "the classifier metrics"
        raise GankitError(f"{asking} need {what} of shape {'x'.join(map(str, INPUT_SHAPE))} (the classifier's "
                          f"input), got {'x'.join(map(str, shape))}; set data.resolution: 28 and data.channels: 1, "
                          "or leave those metrics out")


def _check_classifier_data(spec: dict[str, Any], shape: tuple[int, ...], names: list[str], label: str) -> None:
    from gankit.metrics.classifier import CLASSIFIER_DATASETS

    if spec["name"] not in CLASSIFIER_DATASETS:
        raise GankitError(f"{', '.join(names)} use gankit's classifiers, which exist for "
                          f"{' and '.join(CLASSIFIER_DATASETS)}, not for '{spec['name']}'; leave them out")
    check_classifier_shape(shape, f"the reference {label} images", names)


def _classifier_head(ext: Extractor) -> dict[str, Any]:
    return {"classifier_test_accuracy": ext.extra.get("test_accuracy"), "resize_protocol": None,
            "resize": "none (the classifier reads 1x28x28 images)"}


def _check_stacked_data(spec: dict[str, Any], shape: tuple[int, ...], names: list[str], label: str) -> None:
    from gankit.metrics.stacked import check_stacked_shape

    check_stacked_shape(shape, f"the reference {label} images")


def _digits(ext: Extractor, batch: Tensor) -> dict[str, Tensor]:
    from gankit.metrics.stacked import channel_digits

    return {"digits": channel_digits(ext, batch)}


SOURCES: dict[str, Source] = {
    # torch-fidelity's Inception-v3 (or the random-test stand-in), under the requested resize protocol
    "inception": Source("inception", lambda r: build_extractor(r.extractor, r.device, r.inception_weights,
                                                               r.download, r.resize_protocol),
                        _features_and_logits, _no_check, _inception_head),
    # the shipped MNIST / Fashion-MNIST classifier of the reference data set
    "classifier": Source("classifier", lambda r: classifier(r.spec["name"], r.device), _features_and_logits,
                         _check_classifier_data, _classifier_head),
    # the MNIST classifier applied to each channel (Stacked MNIST)
    "digits": Source("digits", lambda r: classifier("mnist", r.device), _digits, _check_stacked_data,
                     lambda ext: {}),
}
