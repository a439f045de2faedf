"""``compute_metrics``: every registered sample metric (gankit.metrics.base; FID, IS, KID, precision/recall,
density/coverage through torch-fidelity's Inception-v3, the offline classifier metrics, Stacked MNIST's modes),
with generated images going from the generator to the extractors in memory, batch by batch, and reference
statistics cached on disk. Every value carries its protocol.

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
from gankit.metrics.base import Metric, MetricInputs, MetricSettings, Stream, get_metric, metric_names
from gankit.metrics.extractors import Extractor, build_extractor, classifier
from gankit.metrics.sources import SOURCES, SourceRequest, check_classifier_shape
from gankit.registry import DATASETS, load_builtins

CACHE_VERSION = 1
# Keys of a dataset spec that do not change the images read (left out of the reference's cache key).
NON_CONTENT_KEYS = ("download", "max_memory_mb", "workers", "hflip", "cache", "dequantize")


def metric_scalar(name: str, entry: dict[str, Any]) -> float:
    """The one number of a metric's result that a `best` checkpoint compares (the metric's ``scalar``)."""
    return get_metric(name).scalar(entry["value"])


def higher_is_better(name: str) -> bool:
    return get_metric(name).higher_is_better


# --- validation, before anything is computed -----------------------------------------------------------------

def parse_names(names: str | Iterable[str]) -> list[str]:
    """'fid,is' or ['fid', 'is'] -> ['fid', 'is'] (order kept, duplicates dropped); unknown names are a one-line
    GankitError listing the registered ones."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        get_metric(name)
        if name not in out:
            out.append(name)
    if not out:
        raise GankitError(f"no metric given; valid metrics: {', '.join(metric_names())}")
    return out


def check_sample_count(names: list[str], n: int, what: str = "-n", settings: MetricSettings | None = None,
                       reference: bool = False) -> None:
    """Every asked metric's sample-count rule (``check_count``, or ``check_reference_count`` for the reference
    images); ``what`` names the count in the message (-n, eval.n_samples, the reference)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise GankitError(f"{what} must be an integer, got {n!r}")
    if n < 2:
        raise GankitError(f"{what} must be >= 2 (a covariance needs two samples), got {n}")
    settings = settings or MetricSettings()
    for name in names:
        metric = get_metric(name)
        if reference:
            metric.check_reference_count(n, what, settings)
        else:
            metric.check_count(n, what, settings)


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


def _prepare(metrics: list[Metric], n: int, reference: dict[str, Any] | str, split: str | None,
             n_reference: int | None, settings: MetricSettings, n_name: str = "-n"
             ) -> tuple[dict[str, Any], Any, int]:
    names = [m.name for m in metrics]
    check_sample_count(names, n, n_name, settings)
    spec = resolve_reference(reference, split)
    data = DATASETS.build(spec, "reference")
    if getattr(data, "kind", "image") != "image":
        raise GankitError(f"{', '.join(names)} need image data; '{spec['name']}' is {data.kind} data (toy runs "
                          "report their toy metrics)")
    label = reference_label(spec)
    for source in _sources_of(metrics):
        SOURCES[source].check_data(spec, tuple(data.shape), [m.name for m in metrics if _reads(m, source)], label)
    available = len(data)
    n_ref = available if n_reference is None else n_reference
    if n_ref > available:
        raise GankitError(f"the reference {label} has {available} images, fewer than the {n_ref} asked for")
    compared = [m.name for m in metrics if m.reference is not None]
    if compared:
        check_sample_count(compared, n_ref, f"the reference {label} ({n_ref} images)", settings, reference=True)
    return spec, data, n_ref


def _reads(metric: Metric, source: str) -> bool:
    return any(s.source == source for s in metric.needs)


def _sources_of(metrics: list[Metric]) -> list[str]:
    """The sources the metrics read, in first-use order."""
    out: list[str] = []
    for m in metrics:
        for stream in m.needs:
            if stream.source not in out:
                out.append(stream.source)
    return out


def compute_metrics(names: str | Iterable[str], generate: Callable[[int], Tensor], n: int,
                    reference: dict[str, Any] | str, *, split: str | None = None, n_reference: int | None = None,
                    device: torch.device | str | None = None, batch_size: int = 250,
                    extractor: str = "inception-v3-compat", inception_weights: str | Path | None = None,
                    download: bool = True, cache_dir: Path | str | None = None, cache: bool = True,
                    kid_subsets: int = F.KID_SUBSETS, kid_subset_size: int = F.KID_SUBSET_SIZE,
                    is_splits: int = F.IS_SPLITS, prc_k: int = F.PRC_K, dc_k: int = F.DC_K,
                    resize_protocol: str = "legacy", protocol: dict[str, Any] | None = None,
                    timings: dict[str, float] | None = None, n_name: str = "-n") -> dict[str, dict[str, Any]]:
    """Compute the named metrics of ``n`` generated images against a reference dataset split.

    ``generate(k)`` returns k generated images (float in [-1, 1], NCHW, k <= batch_size). ``reference`` is a
    dataset spec (the run's ``data``), its split replaced by ``split`` when given; ``n_reference`` defaults to
    the whole split. ``extractor`` serves the Inception metrics ('inception-v3-compat' or 'random-test') under
    ``resize_protocol`` ('legacy' or 'clean', gankit.metrics.resize); ``inception_weights`` is a local weights
    file (else $GANKIT_INCEPTION_WEIGHTS, torch hub's cache, a download unless ``download`` is False). Reference
    statistics are cached in ``cache_dir`` (default $GANKIT_METRICS_CACHE or ~/.cache/gankit/metrics) unless
    ``cache`` is False. ``protocol`` entries (e.g. weights: ema, step: 5000) are added to every metric's protocol;
    ``timings`` (a dict) receives the seconds of each phase; ``n_name`` is how messages name n (-n;
    eval.n_samples in training). Names, sample counts, split, shapes and weights are checked before anything is
    computed.

    Every metric declares the streams it reads (gankit.metrics.base): one pass over the generated images
    collects their union, each source (extractor) built once. Returns {name: {"value": ..., "protocol": {...}}}
    ("std" too for is, kid, cs), in the order asked.
    """
    metrics = [get_metric(name) for name in parse_names(names)]
    other = [m.name for m in metrics if m.scope != "samples"]
    if other:
        raise GankitError(f"{', '.join(other)} are not computed from generated images alone (gankit.evaluation "
                          "computes them from the run)")
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available()
                                                                          else "cpu")
    if batch_size < 1:
        raise GankitError(f"batch size must be >= 1, got {batch_size}")
    settings = MetricSettings(kid_subsets, kid_subset_size, is_splits, prc_k, dc_k)
    with _timed(timings, "setup", device):
        spec, data, n_ref = _prepare(metrics, n, reference, split, n_reference, settings, n_name)
        label = reference_label(spec)
        request = SourceRequest(spec, device, extractor, inception_weights, download, resize_protocol)
        extractors: dict[str, Extractor] = {}
        with distributed.machine_main_first():  # the Inception weights download once per machine
            for source in _sources_of(metrics):
                extractors[source] = SOURCES[source].build(request)
    folder = None if not cache else Path(cache_dir) if cache_dir is not None else default_cache_dir()
    streams = list(dict.fromkeys(stream for m in metrics for stream in m.needs))

    # Generated images first: a wrong shape shows on the first batch, before the reference is read.
    with _timed(timings, "generated features", device):
        collected: dict[Stream, list[Tensor]] = {stream: [] for stream in streams}
        # Data-parallel runs: each rank extracts every ranks-th batch; rank 0 gathers them in order.
        shard = (distributed.rank(), distributed.world_size())
        for batch in _generated(generate, n, batch_size, device, tuple(data.shape), label, shard):
            for source, ext in extractors.items():
                outputs = SOURCES[source].run(ext, batch)
                for stream in streams:
                    if stream.source == source:
                        collected[stream].append(outputs[stream.output])
        if shard[1] > 1:
            collected = {stream: _gather_batches(parts, device) for stream, parts in collected.items()}

    def finish() -> dict[str, dict[str, Any]]:
        with _timed(timings, "reference statistics", device):
            references = {source: reference_statistics(data, spec, extractors[source], n_ref, device, batch_size,
                                                        folder)
                          for source in dict.fromkeys(m.reference for m in metrics if m.reference is not None)}
        common = {"n_generated": n, "generated_images": "float [-1, 1] quantized to uint8 as when saved to PNG",
                  **(protocol or {})}
        inputs = MetricInputs({stream: torch.cat(parts) for stream, parts in collected.items()}, references,
                              extractors, settings, label, n_ref, common, data.info.get("classes"))
        with _timed(timings, "metrics", device):
            return {m.name: m.compute(inputs) for m in metrics}

    return distributed.on_main(finish)


def _gather_batches(batches: list[Tensor], device: torch.device) -> list[Tensor]:
    """Every rank's batches (rank r holds batches r, r + ranks, ...), in batch order, on ``device``."""
    per_rank = distributed.gather_objects([b.cpu() for b in batches])
    ranks = len(per_rank)
    total = sum(len(p) for p in per_rank)
    return [per_rank[i % ranks][i // ranks].to(device) for i in range(total)]


def intra_fid(generate_class: Callable[[int, int], Tensor], n_per_class: int, reference: dict[str, Any] | str, *,
              classes: Iterable[int] | None = None, split: str | None = None,
              device: torch.device | str | None = None, batch_size: int = 250,
              extractor: str = "inception-v3-compat", inception_weights: str | Path | None = None,
              download: bool = True, cache_dir: Path | str | None = None, cache: bool = True,
              protocol: dict[str, Any] | None = None, resize_protocol: str = "legacy") -> dict[str, Any]:
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
        check_classifier_shape(tuple(data.shape), f"the reference {label} images")
        ext = classifier(spec["name"], device)
    else:
        ext = build_extractor(extractor, device, inception_weights, download, resize_protocol)
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
                         "resize_protocol": ext.resize_protocol, "resize": ext.resize_note or None,
                         "n_generated_per_class": n_per_class, "reference": label, "n_reference_per_class": n_ref,
                         "generated_images": "float [-1, 1] quantized to uint8 as when saved to PNG",
                         **(protocol or {})}}
