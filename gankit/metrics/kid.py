"""``kid``: the Kernel Inception Distance (Binkowski et al. 2018), the unbiased MMD^2 with the kernel
(x.y / d + 1)^3 over random subsets of pool3 features (gankit.metrics.features.kernel_distance)."""
from __future__ import annotations

from typing import Any

from gankit.errors import GankitError
from gankit.metrics import features as F
from gankit.metrics.base import INCEPTION_FEATURES, Metric, MetricInputs, MetricSettings, register_metric


@register_metric
class KernelInceptionDistance(Metric):
    name = "kid"
    help = "Kernel Inception Distance (cubic polynomial kernel, 100 subsets of 1000); lower is better"
    higher_is_better = False
    needs = (INCEPTION_FEATURES,)
    reference = "inception"

    def check_count(self, n: int, what: str, settings: MetricSettings) -> None:
        size = settings.kid_subset_size
        if n < size:
            raise GankitError(f"{what} {n} is smaller than the KID subset size {size}; use at least {size} samples "
                              "or leave out kid")

    def compute(self, inputs: MetricInputs) -> dict[str, Any]:
        s = inputs.settings
        mean, std = F.kernel_distance(inputs.generated[INCEPTION_FEATURES], inputs.references["inception"]["features"],
                                      s.kid_subsets, s.kid_subset_size)
        return {"value": mean, "std": std, "protocol": inputs.protocol(
            INCEPTION_FEATURES, True, subsets=s.kid_subsets, subset_size=s.kid_subset_size, kernel="(x.y/d + 1)^3",
            estimator="unbiased MMD^2")}
