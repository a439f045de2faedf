"""Sample-quality metrics.

Image runs: one module per metric, each a registered ``Metric`` (base.py) declaring the streams it reads;
``compute_metrics`` collects their union in one pass (FID, IS, KID, precision/recall, density/coverage through
torch-fidelity's Inception-v3 under the legacy or clean resize protocol; Frechet distance, classifier score,
class histogram, density/coverage with gankit's MNIST/Fashion-MNIST classifiers; Stacked MNIST's modes); per-class
metrics for class-conditional generators (conditional.py) and the InfoGAN metric (infogan.py) join the same
registry; see docs/evaluation.md. Toy runs: mode coverage (toy.py).
"""
from gankit.metrics.base import METRICS, Metric, get_metric, load_metrics, metric_names, register_metric
from gankit.metrics.compute import (
    check_sample_count,
    compute_metrics,
    default_cache_dir,
    higher_is_better,
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
    density_coverage,
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_distance,
    precision_recall,
)

__all__ = [
    "EXTRACTORS",
    "INCEPTION_FILE",
    "METRICS",
    "Metric",
    "WEIGHTS_ENV",
    "check_sample_count",
    "class_histogram",
    "compute_metrics",
    "default_cache_dir",
    "density_coverage",
    "get_metric",
    "higher_is_better",
    "load_metrics",
    "metric_names",
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
    "register_metric",
    "resolve_reference",
]
