"""``fid``: the Frechet Inception Distance (Heusel et al. 2017) of the generated images' pool3 features to the
reference split's: ||mu_g - mu_r||^2 + tr(S_g) + tr(S_r) - 2 tr((S_g S_r)^(1/2)) (gankit.metrics.features)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from gankit.metrics import features as F
from gankit.metrics.base import INCEPTION_FEATURES, Metric, MetricInputs, Stream, register_metric


def frechet_result(features: Tensor, reference: dict[str, Tensor], protocol: dict[str, Any]) -> dict[str, Any]:
    """The Frechet distance of generated features to cached reference statistics, with its protocol."""
    mu, sigma = F.feature_statistics(features)
    return {"value": F.frechet_distance(mu, sigma, reference["mu"], reference["sigma"]), "protocol": protocol}


class FrechetDistance(Metric):
    """The Frechet distance of one feature stream to its source's reference statistics (fid, cfd)."""

    higher_is_better = False
    stream: Stream

    def compute(self, inputs: MetricInputs) -> dict[str, Any]:
        return frechet_result(inputs.generated[self.stream], inputs.references[self.stream.source],
                              inputs.protocol(self.stream, True))


@register_metric
class FrechetInceptionDistance(FrechetDistance):
    name = "fid"
    help = "Frechet Inception Distance (pool3, 2048-d) to the reference split; lower is better"
    needs = (INCEPTION_FEATURES,)
    reference = "inception"
    stream = INCEPTION_FEATURES
