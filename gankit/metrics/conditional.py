"""Metrics of class-conditional generators, computed class by class (samples generated for a requested class):

* ``intra_fid``: mean over classes of the FID between the samples of class c and the reference images of class c
  (Miyato & Koyama 2018), Inception-v3 features;
* ``intra_cfd``: the same in the MNIST/Fashion-MNIST classifier's feature space (offline);
* ``cacc``: conditional accuracy, how often the shipped classifier predicts the requested class.

Every value carries its protocol: samples per class and the reference split.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.errors import GankitError
from gankit.metrics.base import (CLASSIFIER_FEATURES, CLASSIFIER_LOGITS, INCEPTION_FEATURES, Metric, PerClassRequest,
                                 get_metric, register_metric)
from gankit.metrics.classifier import CLASSIFIER_DATASETS, INPUT_SHAPE
from gankit.metrics.extractors import classifier


def conditional_metrics(names: list[str], generate_class: Callable[[int, int], Tensor], n_classes: int,
                        n_per_class: int, reference: dict[str, Any], *, split: str | None = None,
                        device: torch.device, batch_size: int = 250, extractor: str = "inception-v3-compat",
                        inception_weights: str | Path | None = None, protocol: dict[str, Any] | None = None,
                        resize_protocol: str = "legacy") -> dict[str, dict[str, Any]]:
    """``generate_class(k, c)``: k images of class c (float [-1, 1]). Returns {name: {"value", ..., "protocol"}}."""
    from gankit.metrics.compute import resolve_reference

    metrics = [get_metric(name) for name in names]
    spec = resolve_reference(reference, split)
    offline = [m.name for m in metrics if m.reference == "classifier" or CLASSIFIER_LOGITS in m.needs]
    if offline and spec["name"] not in CLASSIFIER_DATASETS:
        raise GankitError(f"{', '.join(offline)} use gankit's classifiers, which exist for mnist and fashion_mnist, "
                          f"not for '{spec['name']}'; leave them out")
    common = {"n_per_class": n_per_class, "n_classes": n_classes, **(protocol or {})}
    request = PerClassRequest(generate_class, n_classes, n_per_class, spec, device, batch_size, extractor,
                              inception_weights, resize_protocol, common)
    return {m.name: m.compute_per_class(request) for m in metrics}


class IntraFrechetDistance(Metric):
    """The mean over classes of each class's Frechet distance, in ``extractor``'s space (None: the run's
    Inception extractor under its resize protocol)."""

    higher_is_better = False
    scope = "per_class"
    extractor: str | None = None

    def compute_per_class(self, request: PerClassRequest) -> dict[str, Any]:
        from gankit.metrics.compute import intra_fid

        return intra_fid(request.generate_class, request.n_per_class, request.spec, device=request.device,
                         batch_size=request.batch_size, extractor=self.extractor or request.extractor,
                         inception_weights=request.inception_weights, protocol=request.common,
                         resize_protocol=request.resize_protocol)


@register_metric
class IntraFID(IntraFrechetDistance):
    name = "intra_fid"
    help = "conditional runs: mean over classes of the FID of each class's samples to that class's images"
    needs = (INCEPTION_FEATURES,)  # per class
    reference = "inception"


@register_metric
class IntraClassifierFD(IntraFrechetDistance):
    name = "intra_cfd"
    help = "conditional runs: mean per-class Frechet distance in the MNIST/Fashion-MNIST classifier's space"
    needs = (CLASSIFIER_FEATURES,)  # per class
    reference = "classifier"
    extractor = "classifier"


@register_metric
class ConditionalAccuracy(Metric):
    name = "cacc"
    help = "conditional runs: how often the MNIST/Fashion-MNIST classifier predicts the requested class"
    higher_is_better = True
    needs = (CLASSIFIER_LOGITS,)  # per class
    scope = "per_class"

    def compute_per_class(self, request: PerClassRequest) -> dict[str, Any]:
        return conditional_accuracy(request.generate_class, request.n_classes, request.n_per_class, request.spec,
                                    request.device, request.batch_size, request.common)


def conditional_accuracy(generate_class: Callable[[int, int], Tensor], n_classes: int, n_per_class: int,
                         spec: dict[str, Any], device: torch.device, batch_size: int,
                         protocol: dict[str, Any]) -> dict[str, Any]:
    """The fraction of samples generated for class c that the shipped classifier assigns to c, over all classes
    (value) and per class."""
    from gankit.metrics.compute import _generated, reference_label

    clf = classifier(spec["name"], device)
    names = class_names(spec["name"], n_classes)
    per_class: dict[str, float] = {}
    for c in range(n_classes):
        hits = 0
        # The classifier's input shape is checked on the first batch (as the reference images' shape elsewhere).
        for batch in _generated(lambda k, c=c: generate_class(k, c), n_per_class, batch_size, device, INPUT_SHAPE,
                                reference_label(spec)):
            hits += int((clf(batch)[1].argmax(1) == c).sum())
        per_class[names[c]] = hits / n_per_class
    return {"value": sum(per_class.values()) / n_classes, "per_class": per_class,
            "protocol": {"classifier": clf.describe, "classifier_test_accuracy": clf.extra.get("test_accuracy"),
                         "reference": reference_label(spec), **protocol}}


def class_names(dataset: str, n_classes: int) -> list[str]:
    """The class names results are keyed by (as intra_fid keys its per-class values)."""
    from gankit.data.images import FASHION_CLASSES, MNIST_CLASSES

    known = {"mnist": MNIST_CLASSES, "fashion_mnist": FASHION_CLASSES}.get(dataset)
    return list(known) if known is not None and len(known) == n_classes else [str(c) for c in range(n_classes)]
