"""Sample-quality metrics.

Image runs: ``compute_metrics`` (FID, IS, KID, precision/recall through torch-fidelity's Inception-v3; Frechet
distance, classifier score and class histogram with gankit's MNIST/Fashion-MNIST classifiers) and ``intra_fid``
for class-conditional generators; see docs/evaluation.md. Toy runs: mode coverage (toy.py).
"""
from gankit.metrics.compute import (
    CLASSIFIER_METRICS,
    HIGHER_IS_BETTER,
    INCEPTION_METRICS,
    METRIC_HELP,
    METRIC_NAMES,
    check_sample_count,
    compute_metrics,
    default_cache_dir,
    intra_fid,
    metric_scalar,
    parse_names,
    resolve_reference,
)
from gankit.metrics.extractors import EXTRACTORS, INCEPTION_FILE, WEIGHTS_ENV, locate_inception_weights, register_extractor
from gankit.metrics.features import (
    class_histogram,
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_distance,
    precision_recall,
)

__all__ = [
    "compute_metrics", "intra_fid", "METRIC_NAMES", "METRIC_HELP", "INCEPTION_METRICS", "CLASSIFIER_METRICS",
    "HIGHER_IS_BETTER", "metric_scalar", "parse_names", "check_sample_count", "resolve_reference",
    "default_cache_dir", "EXTRACTORS", "register_extractor", "locate_inception_weights", "INCEPTION_FILE",
    "WEIGHTS_ENV", "frechet_distance", "feature_statistics", "inception_score", "kernel_distance",
    "precision_recall", "class_histogram",
]
