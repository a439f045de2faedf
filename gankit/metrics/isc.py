"""``is``: the Inception Score (Salimans et al. 2016), exp(E_x KL(p(y|x) || p(y))) on Inception's
``logits_unbiased``, mean and std over splits (gankit.metrics.features.inception_score)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from gankit.errors import GankitError
from gankit.metrics import features as F
from gankit.metrics.base import INCEPTION_LOGITS, Metric, MetricInputs, MetricSettings, Stream, register_metric


def score_result(logits: Tensor, splits: int, protocol: dict[str, Any]) -> dict[str, Any]:
    """The Inception Score formula (also the classifier score): mean and std over ``splits``."""
    mean, std = F.inception_score(logits, splits)
    return {"value": mean, "std": std, "protocol": protocol}


def check_splits(name: str, n: int, what: str, splits: int) -> None:
    if n < splits:
        raise GankitError(f"{what} {n} is smaller than the {splits} splits of {name}; use at least {splits} samples")


class LogitScore(Metric):
    """The Inception Score formula on one logits stream, over ``is_splits`` splits (is, cs)."""

    higher_is_better = True
    stream: Stream

    def check_count(self, n: int, what: str, settings: MetricSettings) -> None:
        check_splits(self.name, n, what, settings.is_splits)

    def compute(self, inputs: MetricInputs) -> dict[str, Any]:
        splits = inputs.settings.is_splits
        return score_result(inputs.generated[self.stream], splits, inputs.protocol(self.stream, False, splits=splits))


@register_metric
class InceptionScore(LogitScore):
    name = "is"
    help = "Inception Score (logits_unbiased, 10 splits) of the generated images; higher is better"
    needs = (INCEPTION_LOGITS,)
    stream = INCEPTION_LOGITS
