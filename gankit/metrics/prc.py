"""``prc``: improved precision and recall (Kynkaanniemi et al. 2019) with k-NN radii in pool3 feature space,
and their F-score (gankit.metrics.features.precision_recall)."""
from __future__ import annotations

from typing import Any

from gankit.errors import GankitError
from gankit.metrics import features as F
from gankit.metrics.base import INCEPTION_FEATURES, Metric, MetricInputs, MetricSettings, register_metric


@register_metric
class PrecisionRecall(Metric):
    name = "prc"
    help = "precision / recall / F-score, Kynkaanniemi et al. 2019 (pool3, k=3); higher is better"
    higher_is_better = True
    needs = (INCEPTION_FEATURES,)
    reference = "inception"

    def check_count(self, n: int, what: str, settings: MetricSettings) -> None:
        k = settings.prc_k  # both sets need a k-th other neighbour
        if n <= k:
            raise GankitError(f"{what} {n} is too small for prc with k={k}; use at least {k + 1} samples")

    def compute(self, inputs: MetricInputs) -> dict[str, Any]:
        k = inputs.settings.prc_k
        value = F.precision_recall(inputs.generated[INCEPTION_FEATURES], inputs.references["inception"]["features"], k)
        return {"value": value, "protocol": inputs.protocol(INCEPTION_FEATURES, True, k=k)}

    def scalar(self, value: Any) -> float:
        return float(value["f_score"])
