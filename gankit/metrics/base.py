"""What a metric is: a registered object that declares what it reads from the generated images (its *streams*:
Inception features, Inception logits, the shipped classifier's features, ...), whether it compares with reference
statistics, and how features become statistics and then a number.

``compute_metrics`` asks every requested metric what it needs, builds each feature extractor (a *source*) once,
collects the union of the streams in one pass over the generated images, reads the reference statistics of the
sources that some metric compares against, and hands each metric the same ``MetricInputs``. Adding a metric is one
module with one ``@register_metric`` class (docs/evaluation.md, "Adding a metric"); nothing else branches on names.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from torch import Tensor

from gankit.errors import GankitError
from gankit.metrics import features as F


class Stream(NamedTuple):
    """One per-sample output collected from the generated images: ``source`` (an extractor, gankit.metrics.sources)
    and its ``output`` ('features', 'logits', 'digits')."""

    source: str
    output: str


INCEPTION_FEATURES = Stream("inception", "features")
INCEPTION_LOGITS = Stream("inception", "logits")
CLASSIFIER_FEATURES = Stream("classifier", "features")
CLASSIFIER_LOGITS = Stream("classifier", "logits")
CHANNEL_DIGITS = Stream("digits", "digits")


@dataclass(frozen=True)
class MetricSettings:
    """The tunable constants of the metrics (compute_metrics' keyword arguments)."""

    kid_subsets: int = F.KID_SUBSETS
    kid_subset_size: int = F.KID_SUBSET_SIZE
    is_splits: int = F.IS_SPLITS
    prc_k: int = F.PRC_K
    dc_k: int = F.DC_K


@dataclass
class MetricInputs:
    """Everything a metric's ``compute`` may read: the generated streams (concatenated in sample order), the
    reference statistics of each source ({'mu', 'sigma', 'features'}), the built extractors, the settings, and the
    protocol entries shared by every metric."""

    generated: dict[Stream, Tensor]
    references: dict[str, dict[str, Tensor]]
    extractors: dict[str, Any]
    settings: MetricSettings
    reference_label: str
    n_reference: int
    common: dict[str, Any]
    class_names: list[str] | None = None

    def protocol(self, stream: Stream, with_reference: bool, **more: Any) -> dict[str, Any]:
        """The protocol block of a number computed from ``stream``: the extractor, its layer and input handling
        (resize protocol), the reference (when compared with one), the shared entries and the metric's own."""
        from gankit.metrics.sources import SOURCES

        ext = self.extractors[stream.source]
        layer = {"features": ext.feature_layer, "logits": ext.logits_layer}.get(stream.output, stream.output)
        ref = {"reference": self.reference_label, "n_reference": self.n_reference} if with_reference else \
            {"reference": None}
        return {"extractor": ext.describe, "extractor_name": ext.name, "feature_layer": layer,
                **SOURCES[stream.source].protocol_head(ext), **ref, **self.common, **more}


class Metric:
    """A metric: subclass, set the class attributes, implement ``compute`` and decorate with ``@register_metric``.

    * ``needs``: the streams of generated images it reads (one pass collects the union over the metrics asked);
    * ``reference``: the source whose reference statistics it compares with, or None;
    * ``scope``: "samples" (computed in compute_metrics' single pass over the generated images: ``compute``),
      "per_class" (class by class from a class-conditional generator, gankit.metrics.conditional:
      ``compute_per_class``) or "run" (reads the trained run itself, e.g. InfoGAN's Q head: ``compute_run``);
    * ``check_run``: what the run must be for the metric (conditional, an image shape, a Q head), checked before
      anything is trained or computed.
    """

    name: ClassVar[str]
    help: ClassVar[str]  # one line, shown by `gankit list`
    higher_is_better: ClassVar[bool]  # the direction of ``scalar`` (a `best` checkpoint)
    needs: ClassVar[tuple[Stream, ...]] = ()
    reference: ClassVar[str | None] = None
    scope: ClassVar[str] = "samples"

    @property
    def per_class(self) -> bool:
        return self.scope == "per_class"

    def check_run(self, exp: Any) -> None:
        """Raise a one-line GankitError when this run cannot report the metric (default: any image run can)."""
        if self.scope == "per_class" and not exp.conditional:
            raise GankitError(f"{self.name} is for conditional runs (model.conditional: true)")

    def check_count(self, n: int, what: str, settings: MetricSettings) -> None:
        """Raise a one-line GankitError when ``n`` generated samples are too few (every metric needs n >= 2)."""

    def check_reference_count(self, n: int, what: str, settings: MetricSettings) -> None:
        """The same for the reference images (by default the same rule as for the generated ones)."""
        self.check_count(n, what, settings)

    def compute(self, inputs: MetricInputs) -> dict[str, Any]:
        """{"value": ..., "protocol": {...}} (and whatever else the metric reports, e.g. "std")."""
        raise NotImplementedError(f"metric '{self.name}' is computed class by class (compute_per_class)")

    def compute_per_class(self, request: Any) -> dict[str, Any]:
        raise NotImplementedError(f"metric '{self.name}' is computed in compute_metrics' single pass")

    def compute_run(self, request: "RunRequest") -> dict[str, Any]:
        raise NotImplementedError(f"metric '{self.name}' does not read the run (scope {self.scope})")

    def scalar(self, value: Any) -> float:
        """The one number a `best` checkpoint compares (``higher_is_better`` gives its direction)."""
        return float(value)


METRICS: dict[str, Metric] = {}

# The modules whose @register_metric classes make up the built-in metrics, in the order `gankit list` shows them.
BUILTIN_MODULES = ("fid", "isc", "kid", "prc", "density", "classifier_metrics", "conditional", "stacked", "infogan")
SCOPES = ("samples", "per_class", "run")


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Class decorator: add one instance of ``cls`` to the registry under ``cls.name``."""
    for attr in ("name", "help", "higher_is_better"):
        if not hasattr(cls, attr):
            raise TypeError(f"metric class {cls.__name__} does not set '{attr}'")
    if cls.name in METRICS:
        raise RuntimeError(f"metric '{cls.name}' registered twice")
    if "\n" in cls.help:
        raise TypeError(f"metric '{cls.name}': help must be one line")
    if getattr(cls, "scope", "samples") not in SCOPES:
        raise TypeError(f"metric '{cls.name}': scope must be one of {', '.join(SCOPES)}")
    if cls.scope == "samples" and cls.reference is not None and not any(s.source == cls.reference for s in cls.needs):
        raise TypeError(f"metric '{cls.name}' compares with {cls.reference} reference statistics but reads no "
                        f"{cls.reference} stream")
    METRICS[cls.name] = cls()
    return cls


_LOADED = False


def load_metrics() -> dict[str, Metric]:
    """Import the built-in metric modules (their decorators fill METRICS) and return the registry."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for module in BUILTIN_MODULES:
            importlib.import_module(f"gankit.metrics.{module}")
    return METRICS


def get_metric(name: str) -> Metric:
    metrics = load_metrics()
    if name not in metrics:
        raise GankitError(f"unknown metric '{name}'; valid metrics: {', '.join(metrics)}")
    return metrics[name]


def metric_names(scope: str | None = None) -> tuple[str, ...]:
    """The registered metric names (of one scope when given), in registration order."""
    return tuple(name for name, m in load_metrics().items() if scope is None or m.scope == scope)


def require_at_least(n: int, minimum: int, message: Callable[[], str]) -> None:
    """A helper for ``check_count``: raise GankitError(message()) when n < minimum."""
    if n < minimum:
        raise GankitError(message())


@dataclass
class PerClassRequest:
    """What a per-class metric receives (gankit.metrics.conditional): ``generate_class(k, c)`` gives k images of
    class c (float [-1, 1])."""

    generate_class: Callable[[int, int], Tensor]
    n_classes: int
    n_per_class: int
    spec: dict[str, Any]
    device: Any
    batch_size: int
    extractor: str
    inception_weights: Any
    resize_protocol: str
    common: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRequest:
    """What a run-scope metric receives: the loaded Experiment, the sample count and the evaluation options."""

    exp: Any
    n: int
    seed: int
    batch_size: int
    split: str | None
    protocol: dict[str, Any] = field(default_factory=dict)
