"""``compute_metrics``: FID, IS, KID, precision/recall (Inception-v3 through torch-fidelity) and the offline
classifier metrics, with generated images going from the generator to the extractors in memory, batch by batch,
and reference statistics cached on disk. Every value carries its protocol.

Generated images (float in [-1, 1]) are quantized to uint8 exactly as when they are saved as PNG (round to
nearest), so the numbers equal those of the PNG-folder workflow; reference images are the data set's uint8
images as decoded (CIFAR-10 without flips).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit import distributed
from gankit.data.base import to_uint8
from gankit.errors import ConfigError, GankitError
from gankit.metrics import features as F
from gankit.metrics.extractors import Extractor, build_extractor, classifier
from gankit.metrics.stacked import (STACKED_METRICS, channel_digits, check_stacked_shape, digit_classifier,
                                     stacked_result)
from gankit.registry import DATASETS, load_builtins

CACHE_VERSION = 1
INCEPTION_METRICS = ("fid", "is", "kid", "prc")
CLASSIFIER_METRICS = ("cfd", "cs", "classes")
CONDITIONAL_METRICS = ("intra_fid", "intra_cfd", "cacc")  # class-conditional runs (gankit.metrics.conditional)
METRIC_NAMES = INCEPTION_METRICS + CLASSIFIER_METRICS + CONDITIONAL_METRICS + STACKED_METRICS
METRIC_HELP = {
    "fid": "Frechet Inception Distance (pool3, 2048-d) to the reference split; lower is better",
    "is": "Inception Score (logits_unbiased, 10 splits) of the generated images; higher is better",
    "kid": "Kernel Inception Distance (cubic polynomial kernel, 100 subsets of 1000); lower is better",
    "prc": "precision / recall / F-score, Kynkaanniemi et al. 2019 (pool3, k=3); higher is better",
    "cfd": "Frechet distance in the MNIST/Fashion-MNIST classifier's 128-d feature space; lower is better",
    "cs": "classifier score: the Inception Score formula with the MNIST/Fashion-MNIST classifier; higher is better",
    "classes": "histogram of the classifier's predicted classes, classes covered, KL to uniform (mode collapse)",
    "intra_fid": "conditional runs: mean over classes of the FID of each class's samples to that class's images",
    "intra_cfd": "conditional runs: mean per-class Frechet distance in the MNIST/Fashion-MNIST classifier's space",
    "cacc": "conditional runs: how often the MNIST/Fashion-MNIST classifier predicts the requested class",
    "stacked_modes": "Stacked MNIST: digit triples (one MNIST classification per channel) covered of 1000, KL to "
                     "uniform",
}
# For keeping a `best` checkpoint: the scalar of each metric (see metric_scalar) and its direction.
HIGHER_IS_BETTER = {"fid": False, "is": True, "kid": False, "prc": True, "cfd": False, "cs": True,
                    "classes": False, "intra_fid": False, "intra_cfd": False, "cacc": True,
                    "stacked_modes": False}  # stacked_modes: its KL to uniform
# Keys of a dataset spec that do not change the images read (left out of the reference's cache key).
NON_CONTENT_KEYS = ("download", "max_memory_mb", "workers", "hflip", "cache", "dequantize")



def metric_scalar(name: str, entry: dict[str, Any]) -> float:
    """The one number of a metric's result that a `best` checkpoint compares (HIGHER_IS_BETTER gives the
    direction): the value, prc's F-score, classes' KL to uniform."""
    value = entry["value"]
    if name == "prc":
        return float(value["f_score"])
    if name in ("classes", "stacked_modes"):
        return float(value["kl_to_uniform"])
    return float(value)


# --- validation, before anything is computed -----------------------------------------------------------------

def parse_names(names: str | Iterable[str]) -> list[str]:
    """'fid,is' or ['fid', 'is'] -> ['fid', 'is'] (order kept, duplicates dropped); unknown names are a one-line
    GankitError listing the valid ones."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        if name not in METRIC_NAMES:
            raise GankitError(f"unknown metric '{name}'; valid metrics: {', '.join(METRIC_NAMES)}")
        if name not in out:
            out.append(name)
    if not out:
        raise GankitError(f"no metric given; valid metrics: {', '.join(METRIC_NAMES)}")
    return out


def check_sample_count(names: list[str], n: int, what: str = "-n", *, kid_subset_size: int = F.KID_SUBSET_SIZE,
                       is_splits: int = F.IS_SPLITS, prc_k: int = F.PRC_K) -> None:
    """The sample-count rules of each metric; ``what`` names the count in the message (-n, the reference)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise GankitError(f"{what} must be an integer, got {n!r}")
    if n < 2:
        raise GankitError(f"{what} must be >= 2 (a covariance needs two samples), got {n}")
    if "kid" in names and n < kid_subset_size:
        raise GankitError(f"{what} {n} is smaller than the KID subset size {kid_subset_size}; use at least "
                          f"{kid_subset_size} samples or leave out kid")
    for name in ("is", "cs"):
        if name in names and n < is_splits:
            raise GankitError(f"{what} {n} is smaller than the {is_splits} splits of {name}; use at least "
                              f"{is_splits} samples")
    if "prc" in names and n <= prc_k:
        raise GankitError(f"{what} {n} is too small for prc with k={prc_k}; use at least {prc_k + 1} samples")


def dataset_splits(name: str) -> list[str] | None:
    """The split names a dataset factory accepts (from its `split` annotation), or None when it has no split."""
    load_builtins()
    factory = DATASETS.get(name, "reference.name")
    if "split" not in inspect.signature(factory).parameters:
        return None
    hint = typing.get_type_hints(factory).get("split")
    args = typing.get_args(hint)
    return [str(a) for a in args] if typing.get_origin(hint) is typing.Literal else []


def resolve_reference(reference: dict[str, Any] | str, split: str | None = None) -> dict[str, Any]:
    """The reference dataset spec with every default filled in, and its split replaced by ``split`` (--ref).
    A split the dataset does not have is a one-line GankitError naming the ones it has."""
    load_builtins()
    spec = {"name": reference} if isinstance(reference, str) else dict(reference)
    if not isinstance(spec.get("name"), str):
        raise GankitError(f"the reference must be a dataset spec with a 'name', got {reference!r}")
    if split is not None:
        splits = dataset_splits(spec["name"])
        if splits is None:
            raise GankitError(f"--ref {split}: dataset '{spec['name']}' has no splits")
        if splits and split not in splits:
            raise GankitError(f"--ref {split}: dataset '{spec['name']}' has no split '{split}'; its splits: "
                              f"{', '.join(splits)}")
        spec["split"] = split
    try:
        return DATASETS.resolve(spec, "reference")
    except ConfigError as exc:
        raise GankitError(str(exc)) from None


def reference_label(spec: dict[str, Any]) -> str:
    return f"{spec['name']}/{spec['split']}" if "split" in spec else spec["name"]


# --- reference images and statistics -------------------------------------------------------------------------

def _uint8_batches(data: Any, n: int, batch_size: int, index: Tensor | None = None) -> Iterator[Tensor]:
    """The first n uint8 NCHW images of a dataset (or those at ``index``), in batches, on the CPU."""
    if index is not None:
        n = len(index)
    for start in range(0, n, batch_size):
        ids = index[start:start + batch_size] if index is not None else torch.arange(start, min(n, start + batch_size))
        if hasattr(data, "x"):
            yield data.x[ids.to(data.x.device)].cpu()
        elif hasattr(data, "items"):
            yield torch.stack([data.items[int(i)] for i in ids])
        else:  # any dataset with real_batch only
            yield to_uint8(data.real_batch(int(ids.max()) + 1)[ids].cpu())


def default_cache_dir() -> Path:
    """$GANKIT_METRICS_CACHE, else $XDG_CACHE_HOME/gankit/metrics (~/.cache/gankit/metrics)."""
    if os.environ.get("GANKIT_METRICS_CACHE"):
        return Path(os.environ["GANKIT_METRICS_CACHE"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "gankit" / "metrics"


def _cache_key(spec: dict[str, Any], extractor: Extractor, n_reference: int, subset: str) -> dict[str, Any]:
    content = {k: v for k, v in spec.items() if k not in NON_CONTENT_KEYS}
    if content.get("root"):
        content["root"] = str(Path(content["root"]).expanduser().resolve())
    return {"version": CACHE_VERSION, "dataset": content, "n_reference": n_reference, "subset": subset,
            "extractor": extractor.name, "describe": extractor.describe, "feature_layer": extractor.feature_layer,
            "extra": {k: v for k, v in extractor.extra.items() if isinstance(v, (str, int, float))}}


@contextmanager
def _timed(timings: dict[str, float] | None, phase: str, device: torch.device) -> Iterator[None]:
    start = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if timings is not None:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start


def reference_statistics(data: Any, spec: dict[str, Any], extractor: Extractor, n_reference: int,
                         device: torch.device, batch_size: int, cache_dir: Path | None,
                         index: Tensor | None = None, subset: str = "all") -> dict[str, Tensor]:
    """{'mu', 'sigma', 'features'} of the reference images under ``extractor``, from the cache when there.

    The cache file (torch.save of tensors only, read with weights_only=True, written to a temporary file then
    renamed) is keyed by the dataset spec (split, resolution, channels, limit, root), the reference count, the
    extractor and its feature layer."""
    key = _cache_key(spec, extractor, n_reference, subset)
    text = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = None
    if cache_dir is not None:
        tag = f"-{subset}" if subset != "all" else ""
        stem = f"{spec['name']}-{spec.get('split', 'all')}{tag}-{extractor.name}-{n_reference}"
        path = Path(cache_dir) / f"{stem}-{digest}.pt"
    memo_key = (str(path) if path is not None else digest, str(device))
    if memo_key in _MEMO and (path is None or path.is_file()):  # periodic evaluation: no re-reading
        return _MEMO[memo_key]
    if path is not None and path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("key") == text:
                return _remember(memo_key, {k: blob[k].to(device) for k in ("mu", "sigma", "features")})
        except Exception:  # noqa: BLE001, S110 - unreadable or stale: recompute and replace it
            pass
    feats = []
    for batch in _uint8_batches(data, n_reference, batch_size, index):
        feats.append(extractor(batch.to(device))[0])
    features = torch.cat(feats)
    mu, sigma = F.feature_statistics(features)
    if path is not None:
        from gankit.io import atomic_path

        with atomic_path(path) as tmp:
            torch.save({"key": text, "mu": mu.cpu(), "sigma": sigma.cpu(), "features": features.cpu()}, tmp)
    return _remember(memo_key, {"mu": mu, "sigma": sigma, "features": features})


_MEMO: dict[tuple[str, str], dict[str, Tensor]] = {}
MEMO_ENTRIES = 2


def _remember(key: tuple[str, str], stats: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keep the last few reference statistics in memory (the latest last)."""
    _MEMO.pop(key, None)
    _MEMO[key] = stats
    while len(_MEMO) > MEMO_ENTRIES:
        _MEMO.pop(next(iter(_MEMO)))
    return stats


# --- generated images ----------------------------------------------------------------------------------------

def _generated(generate: Callable[[int], Tensor], n: int, batch_size: int, device: torch.device,
               expected_shape: tuple[int, ...] | None, label: str, shard: tuple[int, int] = (0, 1)
               ) -> Iterator[Tensor]:
    """uint8 batches of generated images on ``device``, as if saved to PNG and read back.

    ``shard`` (rank, ranks): only batches rank, rank + ranks, ... are generated; for the others the generator
    draws its latents without running (``generate.skip(k)`` when it has one), so each batch holds the same samples
    whatever the number of ranks."""
    done = 0
    rank, ranks = shard
    skip = getattr(generate, "skip", None)
    index = -1
    while done < n:
        want = min(batch_size, n - done)
        index += 1
        if index % ranks != rank:
            if skip is not None:
                skip(want)
            else:
                generate(want)
            done += want
            continue
        x = generate(want)
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] != want:
            raise GankitError(f"the generator returned {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
                              f" for {want} images; expected {want} x C x H x W")
        if expected_shape is not None and tuple(x.shape[1:]) != tuple(expected_shape):
            raise GankitError(f"generated images are {'x'.join(map(str, x.shape[1:]))} but the reference {label} is "
                              f"{'x'.join(map(str, expected_shape))}")
        done += want
        yield to_uint8(torch.nan_to_num(x.detach().to(device), nan=0.0))


def _check_classifier_shape(shape: tuple[int, ...], what: str) -> None:
    from gankit.metrics.classifier import INPUT_SHAPE

    if tuple(shape) != INPUT_SHAPE:
        raise GankitError(f"cfd, cs and classes need {what} of shape {'x'.join(map(str, INPUT_SHAPE))} (the "
                          f"classifier's input), got {'x'.join(map(str, shape))}; set data.resolution: 28 and "
                          "data.channels: 1, or leave those metrics out")


def _prepare(names: list[str], n: int, reference: dict[str, Any] | str, split: str | None,
             n_reference: int | None, kid_subset_size: int, is_splits: int, prc_k: int, n_name: str = "-n"
             ) -> tuple[dict[str, Any], Any, int]:
    check_sample_count(names, n, n_name, kid_subset_size=kid_subset_size, is_splits=is_splits, prc_k=prc_k)
    spec = resolve_reference(reference, split)
    if any(m in CLASSIFIER_METRICS for m in names):
        from gankit.metrics.classifier import CLASSIFIER_DATASETS

        if spec["name"] not in CLASSIFIER_DATASETS:
            raise GankitError(f"cfd, cs and classes use gankit's classifiers, which exist for "
                              f"{' and '.join(CLASSIFIER_DATASETS)}, not for '{spec['name']}'; leave them out")
    data = DATASETS.build(spec, "reference")
    if getattr(data, "kind", "image") != "image":
        raise GankitError(f"{', '.join(names)} need image data; '{spec['name']}' is {data.kind} data (toy runs "
                          "report their toy metrics)")
    if any(m in CLASSIFIER_METRICS for m in names):
        _check_classifier_shape(tuple(data.shape), f"the reference {reference_label(spec)} images")
    if any(m in STACKED_METRICS for m in names):
        check_stacked_shape(tuple(data.shape), f"the reference {reference_label(spec)} images")
    available = len(data)
    n_ref = available if n_reference is None else n_reference
    if n_ref > available:
        raise GankitError(f"the reference {reference_label(spec)} has {available} images, fewer than the "
                          f"{n_ref} asked for")
    ref_names = [m for m in names if m in ("fid", "kid", "prc", "cfd")]
    if ref_names:
        check_sample_count(ref_names, n_ref, f"the reference {reference_label(spec)} ({n_ref} images)",
                           kid_subset_size=kid_subset_size, prc_k=prc_k)
    return spec, data, n_ref


def frechet_result(features: Tensor, reference: dict[str, Any], protocol: dict[str, Any]) -> dict[str, Any]:
    """FID (or classifier FD) of generated features against cached reference statistics."""
    mu, sigma = F.feature_statistics(features)
    return {"value": F.frechet_distance(mu, sigma, reference["mu"], reference["sigma"]), "protocol": protocol}


def score_result(logits: Tensor, splits: int, protocol: dict[str, Any]) -> dict[str, Any]:
    """Inception Score (or classifier score): mean and std over ``splits``."""
    mean, std = F.inception_score(logits, splits)
    return {"value": mean, "std": std, "protocol": protocol}


def compute_metrics(names: str | Iterable[str], generate: Callable[[int], Tensor], n: int,
                    reference: dict[str, Any] | str, *, split: str | None = None, n_reference: int | None = None,
                    device: torch.device | str | None = None, batch_size: int = 250,
                    extractor: str = "inception-v3-compat", inception_weights: str | Path | None = None,
                    download: bool = True, cache_dir: Path | str | None = None, cache: bool = True,
                    kid_subsets: int = F.KID_SUBSETS, kid_subset_size: int = F.KID_SUBSET_SIZE,
                    is_splits: int = F.IS_SPLITS, prc_k: int = F.PRC_K, protocol: dict[str, Any] | None = None,
                    timings: dict[str, float] | None = None, n_name: str = "-n") -> dict[str, dict[str, Any]]:
    """Compute the named metrics of ``n`` generated images against a reference dataset split.

    ``generate(k)`` returns k generated images (float in [-1, 1], NCHW, k <= batch_size). ``reference`` is a
    dataset spec (the run's ``data``), its split replaced by ``split`` when given; ``n_reference`` defaults to
    the whole split. ``extractor`` serves fid/is/kid/prc ('inception-v3-compat' or 'random-test');
    ``inception_weights`` is a local weights file (else $GANKIT_INCEPTION_WEIGHTS, torch hub's cache, a download
    unless ``download`` is False). Reference statistics are cached in ``cache_dir`` (default
    $GANKIT_METRICS_CACHE or ~/.cache/gankit/metrics) unless ``cache`` is False. ``protocol`` entries (e.g.
    weights: ema, step: 5000) are added to every metric's protocol; ``timings`` (a dict) receives the seconds of
    each phase; ``n_name`` is how messages name n (-n; eval.n_samples in training). Names, sample counts, split,
    shapes and weights are checked before anything is computed.

    Returns {name: {"value": ..., "protocol": {...}}} ("std" too for is, kid, cs), in the order asked.
    """
    names = parse_names(names)
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available()
                                                                          else "cpu")
    if batch_size < 1:
        raise GankitError(f"batch size must be >= 1, got {batch_size}")
    with _timed(timings, "setup", device):
        spec, data, n_ref = _prepare(names, n, reference, split, n_reference, kid_subset_size, is_splits, prc_k,
                                     n_name)
        label = reference_label(spec)
        want_inception = [m for m in names if m in INCEPTION_METRICS]
        want_classifier = [m for m in names if m in CLASSIFIER_METRICS]
        with distributed.machine_main_first():  # the Inception weights download once per machine
            inc = build_extractor(extractor, device, inception_weights, download) if want_inception else None
        clf = classifier(spec["name"], device) if want_classifier else None
        digit_clf = digit_classifier(device) if any(m in STACKED_METRICS for m in names) else None
    folder = None if not cache else Path(cache_dir) if cache_dir is not None else default_cache_dir()

    # Generated images first: a wrong shape shows on the first batch, before the reference is read.
    with _timed(timings, "generated features", device):
        inc_feats: list[Tensor] = []
        inc_logits: list[Tensor] = []
        clf_feats: list[Tensor] = []
        clf_logits: list[Tensor] = []
        digits: list[Tensor] = []
        # Data-parallel runs: each rank extracts every ranks-th batch; rank 0 gathers them in order.
        shard = (distributed.rank(), distributed.world_size())
        for batch in _generated(generate, n, batch_size, device, tuple(data.shape), label, shard):
            if inc is not None:
                f, lg = inc(batch)
                if "fid" in names or "kid" in names or "prc" in names:
                    inc_feats.append(f)
                if "is" in names:
                    inc_logits.append(lg)
            if clf is not None:
                f, lg = clf(batch)
                clf_feats.append(f)
                clf_logits.append(lg)
            if digit_clf is not None:
                digits.append(channel_digits(digit_clf, batch))
        if shard[1] > 1:
            inc_feats, inc_logits, clf_feats, clf_logits, digits = (
                _gather_batches(part, device) for part in (inc_feats, inc_logits, clf_feats, clf_logits, digits))
    return distributed.on_main(lambda: _finish_metrics(
        names, n, spec, data, n_ref, label, inc, clf, digit_clf, inc_feats, inc_logits, clf_feats, clf_logits,
        digits, device, batch_size, folder, kid_subsets, kid_subset_size, is_splits, prc_k, protocol, timings))


def _gather_batches(batches: list[Tensor], device: torch.device) -> list[Tensor]:
    """Every rank's batches (rank r holds batches r, r + ranks, ...), in batch order, on ``device``."""
    per_rank = distributed.gather_objects([b.cpu() for b in batches])
    ranks = len(per_rank)
    total = sum(len(p) for p in per_rank)
    return [per_rank[i % ranks][i // ranks].to(device) for i in range(total)]


def _finish_metrics(names: list[str], n: int, spec: dict[str, Any], data: Any, n_ref: int, label: str,
                    inc: Extractor | None, clf: Extractor | None, digit_clf: Any, inc_feats: list[Tensor],
                    inc_logits: list[Tensor], clf_feats: list[Tensor], clf_logits: list[Tensor],
                    digits: list[Tensor], device: torch.device, batch_size: int, folder: Path | None,
                    kid_subsets: int, kid_subset_size: int, is_splits: int, prc_k: int,
                    protocol: dict[str, Any] | None, timings: dict[str, float] | None) -> dict[str, dict[str, Any]]:
    """The reference statistics and each metric's value from the generated images' features."""
    with _timed(timings, "reference statistics", device):
        ref_inc = (reference_statistics(data, spec, inc, n_ref, device, batch_size, folder)
                   if inc is not None and inc_feats else None)
        ref_clf = (reference_statistics(data, spec, clf, n_ref, device, batch_size, folder)
                   if clf is not None and "cfd" in names else None)

    common = {"n_generated": n, "generated_images": "float [-1, 1] quantized to uint8 as when saved to PNG",
              **(protocol or {})}

    def extractor_protocol(ext: Any, layer: str, with_reference: bool, head: dict[str, Any],
                           **more: Any) -> dict[str, Any]:
        ref = {"reference": label, "n_reference": n_ref} if with_reference else {"reference": None}
        return {"extractor": ext.describe, "extractor_name": ext.name, "feature_layer": layer, **head, **ref,
                **common, **more}

    def inception_protocol(layer: str, with_reference: bool, **more: Any) -> dict[str, Any]:
        assert inc is not None
        return extractor_protocol(inc, layer, with_reference, {}, **more)

    def classifier_protocol(layer: str, with_reference: bool, **more: Any) -> dict[str, Any]:
        assert clf is not None
        head = {"classifier_test_accuracy": clf.extra.get("test_accuracy")}
        return extractor_protocol(clf, layer, with_reference, head, **more)

    results: dict[str, dict[str, Any]] = {}
    with _timed(timings, "metrics", device):
        gen_inc = torch.cat(inc_feats) if inc_feats else None
        for name in names:
            if name == "fid":
                assert ref_inc is not None and gen_inc is not None
                results[name] = frechet_result(gen_inc, ref_inc, inception_protocol(inc.feature_layer, True))
            elif name == "is":
                results[name] = score_result(torch.cat(inc_logits), is_splits,
                                             inception_protocol(inc.logits_layer, False, splits=is_splits))
            elif name == "kid":
                assert ref_inc is not None and gen_inc is not None
                mean, std = F.kernel_distance(gen_inc, ref_inc["features"], kid_subsets, kid_subset_size)
                results[name] = {"value": mean, "std": std, "protocol": inception_protocol(
                    inc.feature_layer, True, subsets=kid_subsets, subset_size=kid_subset_size,
                    kernel="(x.y/d + 1)^3", estimator="unbiased MMD^2")}
            elif name == "prc":
                assert ref_inc is not None and gen_inc is not None
                results[name] = {"value": F.precision_recall(gen_inc, ref_inc["features"], prc_k),
                                 "protocol": inception_protocol(inc.feature_layer, True, k=prc_k)}
            elif name == "cfd":
                assert clf is not None and ref_clf is not None
                results[name] = frechet_result(torch.cat(clf_feats), ref_clf,
                                               classifier_protocol(clf.feature_layer, True))
            elif name == "cs":
                results[name] = score_result(torch.cat(clf_logits), is_splits,
                                             classifier_protocol(clf.logits_layer, False, splits=is_splits))
            elif name == "classes":
                predicted = torch.cat(clf_logits).argmax(1)
                results[name] = {"value": F.class_histogram(predicted, 10, data.info.get("classes")),
                                 "protocol": classifier_protocol("argmax of logits", False)}
            elif name == "stacked_modes":
                assert digit_clf is not None
                results[name] = stacked_result(torch.cat(digits), digit_clf, common)
    return results


def intra_fid(generate_class: Callable[[int, int], Tensor], n_per_class: int, reference: dict[str, Any] | str, *,
              classes: Iterable[int] | None = None, split: str | None = None,
              device: torch.device | str | None = None, batch_size: int = 250,
              extractor: str = "inception-v3-compat", inception_weights: str | Path | None = None,
              download: bool = True, cache_dir: Path | str | None = None, cache: bool = True,
              protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """Intra-class FID for class-conditional generators: for each class c, the FID between
    ``generate_class(k, c)`` (k images of class c, float [-1, 1]) and the reference images labelled c; the value
    is the mean over classes, ``per_class`` holds each. ``extractor`` may also be 'classifier' (the
    MNIST/Fashion-MNIST classifier's feature space, offline). Per-class reference statistics are cached."""
    check_sample_count(["fid"], n_per_class, "n_per_class")
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available()
                                                                          else "cpu")
    spec = resolve_reference(reference, split)
    label = reference_label(spec)
    data = DATASETS.build(spec, "reference")
    if getattr(data, "kind", "image") != "image" or data.labels is None:
        raise GankitError(f"intra-class FID needs labelled image data; the reference {label} has no labels")
    labels = data.labels.cpu()
    n_classes = int(labels.max()) + 1
    wanted = list(range(n_classes)) if classes is None else [int(c) for c in classes]
    for c in wanted:
        if not 0 <= c < n_classes:
            raise GankitError(f"class {c} is not in the reference {label} (classes 0..{n_classes - 1})")
        if int((labels == c).sum()) < 2:
            raise GankitError(f"the reference {label} has fewer than 2 images of class {c}")
    if extractor == "classifier":
        if spec["name"] not in ("mnist", "fashion_mnist"):
            raise GankitError(f"extractor 'classifier' exists for mnist and fashion_mnist, not '{spec['name']}'")
        _check_classifier_shape(tuple(data.shape), f"the reference {label} images")
        ext = classifier(spec["name"], device)
    else:
        ext = build_extractor(extractor, device, inception_weights, download)
    folder = None if not cache else Path(cache_dir) if cache_dir is not None else default_cache_dir()
    names = data.info.get("classes") or [str(c) for c in range(n_classes)]
    per_class: dict[str, float] = {}
    n_ref: dict[str, int] = {}
    for c in wanted:
        feats = [ext(b)[0] for b in _generated(lambda k, c=c: generate_class(k, c), n_per_class, batch_size,
                                                device, tuple(data.shape), label)]
        mu, sigma = F.feature_statistics(torch.cat(feats))
        index = torch.nonzero(labels == c).flatten()
        ref = reference_statistics(data, spec, ext, len(index), device, batch_size, folder, index, f"class{c}")
        per_class[names[c]] = F.frechet_distance(mu, sigma, ref["mu"], ref["sigma"])
        n_ref[names[c]] = len(index)
    value = sum(per_class.values()) / len(per_class)
    return {"value": value, "per_class": per_class,
            "protocol": {"extractor": ext.describe, "extractor_name": ext.name, "feature_layer": ext.feature_layer,
                         "n_generated_per_class": n_per_class, "reference": label, "n_reference_per_class": n_ref,
                         "generated_images": "float [-1, 1] quantized to uint8 as when saved to PNG",
                         **(protocol or {})}}
