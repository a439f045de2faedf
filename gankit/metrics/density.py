"""``density_coverage`` and ``classifier_density_coverage``: density and coverage (Naeem et al., ICML 2020,
"Reliable Fidelity and Diversity Metrics for Generative Models"), in Inception's pool3 space and in the shipped
MNIST / Fashion-MNIST classifier's 128-d space (gankit.metrics.features.density_coverage).

Density rewards generated samples in regions dense with real samples (it may exceed 1); coverage is the fraction of
real samples whose k-NN ball holds a generated sample. The scalar a `best` checkpoint follows is coverage (bounded,
and the one of the two that drops under mode collapse)."""
from __future__ import annotations

from typing import Any

from gankit.errors import GankitError
from gankit.metrics import features as F
from gankit.metrics.base import (CLASSIFIER_FEATURES, INCEPTION_FEATURES, Metric, MetricInputs, MetricSettings, Stream,
                                 register_metric)


class _DensityCoverage(Metric):
    higher_is_better = True
    stream: Stream

    def check_reference_count(self, n: int, what: str, settings: MetricSettings) -> None:
        k = settings.dc_k  # the k-NN radii are taken among the real samples only
        if n <= k:
            raise GankitError(f"{what} {n} is too small for {self.name} with k={k}: the k-th nearest neighbour needs "
                              f"at least {k + 1} reference samples")

    def compute(self, inputs: MetricInputs) -> dict[str, Any]:
        k = inputs.settings.dc_k
        value = F.density_coverage(inputs.generated[self.stream], inputs.references[self.stream.source]["features"], k)
        return {"value": value, "protocol": inputs.protocol(self.stream, True, k=k, inequality="strict (<)")}

    def scalar(self, value: Any) -> float:
        return float(value["coverage"])


@register_metric
class InceptionDensityCoverage(_DensityCoverage):
    name = "density_coverage"
    help = "density / coverage, Naeem et al. 2020 (pool3, k=5); higher is better (coverage at most 1)"
    needs = (INCEPTION_FEATURES,)
    reference = "inception"
    stream = INCEPTION_FEATURES


@register_metric
class ClassifierDensityCoverage(_DensityCoverage):
    name = "classifier_density_coverage"
    help = "density / coverage (k=5) in the MNIST/Fashion-MNIST classifier's 128-d feature space; higher is better"
    needs = (CLASSIFIER_FEATURES,)
    reference = "classifier"
    stream = CLASSIFIER_FEATURES
