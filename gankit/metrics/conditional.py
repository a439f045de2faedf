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
from gankit.metrics.classifier import INPUT_SHAPE
from gankit.metrics.compute import _generated, intra_fid, reference_label, resolve_reference
from gankit.metrics.extractors import classifier

CONDITIONAL_METRICS = ("intra_fid", "intra_cfd", "cacc")
CLASSIFIER_CONDITIONAL = ("intra_cfd", "cacc")


def conditional_metrics(names: list[str], generate_class: Callable[[int, int], Tensor], n_classes: int,
                        n_per_class: int, reference: dict[str, Any], *, split: str | None = None,
                        device: torch.device, batch_size: int = 250, extractor: str = "inception-v3-compat",
                        inception_weights: str | Path | None = None, protocol: dict[str, Any] | None = None
                        ) -> dict[str, dict[str, Any]]:
    """``generate_class(k, c)``: k images of class c (float [-1, 1]). Returns {name: {"value", ..., "protocol"}}."""
    spec = resolve_reference(reference, split)
    if any(m in CLASSIFIER_CONDITIONAL for m in names) and spec["name"] not in ("mnist", "fashion_mnist"):
        raise GankitError(f"{', '.join(m for m in names if m in CLASSIFIER_CONDITIONAL)} use gankit's classifiers, "
                          f"which exist for mnist and fashion_mnist, not for '{spec['name']}'; leave them out")
    common = {"n_per_class": n_per_class, "n_classes": n_classes, **(protocol or {})}
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if name == "intra_fid":
            results[name] = intra_fid(generate_class, n_per_class, spec, device=device, batch_size=batch_size,
                                      extractor=extractor, inception_weights=inception_weights, protocol=common)
        elif name == "intra_cfd":
            results[name] = intra_fid(generate_class, n_per_class, spec, device=device, batch_size=batch_size,
                                      extractor="classifier", protocol=common)
        elif name == "cacc":
            results[name] = conditional_accuracy(generate_class, n_classes, n_per_class, spec, device, batch_size,
                                                 common)
    return results


def conditional_accuracy(generate_class: Callable[[int, int], Tensor], n_classes: int, n_per_class: int,
                         spec: dict[str, Any], device: torch.device, batch_size: int,
                         protocol: dict[str, Any]) -> dict[str, Any]:
    """The fraction of samples generated for class c that the shipped classifier assigns to c, over all classes
    (value) and per class."""
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
