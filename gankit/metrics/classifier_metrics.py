"""The offline metrics of the shipped MNIST / Fashion-MNIST classifier (gankit.metrics.classifier): ``cfd`` (the
FID formula on its 128-d features), ``cs`` (the Inception Score formula on its logits) and ``classes`` (the
histogram of its predicted classes)."""
from __future__ import annotations

from typing import Any

from gankit.metrics import features as F
from gankit.metrics.base import CLASSIFIER_FEATURES, CLASSIFIER_LOGITS, Metric, MetricInputs, register_metric
from gankit.metrics.fid import FrechetDistance
from gankit.metrics.isc import LogitScore


@register_metric
class ClassifierFrechetDistance(FrechetDistance):
    name = "cfd"
    help = "Frechet distance in the MNIST/Fashion-MNIST classifier's 128-d feature space; lower is better"
    needs = (CLASSIFIER_FEATURES,)
    reference = "classifier"
    stream = CLASSIFIER_FEATURES


@register_metric
class ClassifierScore(LogitScore):
    name = "cs"
    help = "classifier score: the Inception Score formula with the MNIST/Fashion-MNIST classifier; higher is better"
    needs = (CLASSIFIER_LOGITS,)
    stream = CLASSIFIER_LOGITS


@register_metric
class PredictedClasses(Metric):
    name = "classes"
    help = "histogram of the classifier's predicted classes, classes covered, KL to uniform (mode collapse)"
    higher_is_better = False  # its scalar is the KL to uniform
    needs = (CLASSIFIER_LOGITS,)

    def compute(self, inputs: MetricInputs) -> dict[str, Any]:
        logits = inputs.generated[CLASSIFIER_LOGITS]
        value = F.class_histogram(logits.argmax(1), logits.shape[1], inputs.class_names)
        return {"value": value, "protocol": inputs.protocol(CLASSIFIER_LOGITS, False, feature_layer="argmax of logits")}

    def scalar(self, value: Any) -> float:
        return float(value["kl_to_uniform"])
