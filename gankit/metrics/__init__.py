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
from gankit.metrics.extractors import (
    EXTRACTORS,
    INCEPTION_FILE,
    WEIGHTS_ENV,
    locate_inception_weights,
    register_extractor,
)
from gankit.metrics.features import (
    class_histogram,
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_distance,
    precision_recall,
)

__all__ = [
    "CLASSIFIER_METRICS",
    "EXTRACTORS",
    "HIGHER_IS_BETTER",
    "INCEPTION_FILE",
    "INCEPTION_METRICS",
    "METRIC_HELP",
    "METRIC_NAMES",
    "WEIGHTS_ENV",
    "check_sample_count",
    "class_histogram",
    "compute_metrics",
    "default_cache_dir",
    "feature_statistics",
    "frechet_distance",
    "inception_score",
    "intra_fid",
    "kernel_distance",
    "locate_inception_weights",
    "metric_scalar",
    "parse_names",
    "precision_recall",
    "register_extractor",
    "resolve_reference",
]
