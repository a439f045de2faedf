"""Evaluating a generator: toy mode metrics, image pixel statistics, and the image metrics of gankit.metrics,
each result carrying its protocol. Used at the end of training, every ``eval.every`` G steps, and by
`gankit eval`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gankit import distributed
from gankit.data.base import Batch
from gankit.experiment import Experiment

from gankit.domain import TOY_BEST  # toy metrics a `best` checkpoint can follow, with their direction


class Generate:
    """k samples at a time from the run's sampling generator (EMA weights when enabled), with latents from a
    generator of their own: evaluating never moves the training RNG, so a resumed run stays identical.

    The one way gankit samples a run (snapshots, `gankit sample`, metrics). ``class_index`` fixes the class of a
    conditional run, or the (first) categorical code of an InfoGAN run; otherwise classes and codes are drawn
    from the prior. ``generate(k)`` returns images only (what the metrics take); ``labelled(k)`` returns the
    samples with their classes (an InfoGAN run: the value of its first categorical code).
    """

    def __init__(self, exp: Experiment, seed: int, class_index: int | None = None) -> None:
        self.exp = exp
        self.rng = torch.Generator().manual_seed(seed)
        if class_index is not None:
            exp.prior.check_class(class_index)
        self.class_index = class_index

    def labelled(self, k: int) -> Batch:
        prior = self.exp.prior
        z, y = prior.sample(k, self.exp.device, self.rng)
        if self.class_index is not None and prior.conditional:
            y = torch.full((k,), self.class_index, dtype=torch.long, device=self.exp.device)
        elif self.class_index is not None:  # InfoGAN: the categorical code
            z = prior.codes.with_category(z, self.class_index)
        x = generate_from(self.exp, z, y)
        if y is None and prior.has_categorical:
            y = prior.codes.split(z)[0][0]
        return Batch(x, y)

    def __call__(self, k: int) -> Tensor:
        return self.labelled(k).x

    def skip(self, k: int) -> None:
        """Draw the latents of the next k samples without generating them (another rank generates those)."""
        self.exp.prior.sample(k, self.exp.device, self.rng)

    def many(self, n: int, batch_size: int = 1000) -> Batch:
        parts = [self.labelled(min(batch_size, n - i)) for i in range(0, n, batch_size)]
        ys = [p.y for p in parts]
        return Batch(torch.cat([p.x for p in parts]), torch.cat(ys) if ys[0] is not None else None)


class PerClass:
    """``generate(k, c)``: the next k samples of class c, each class from its own stream (seed + c), so that
    successive batches of a class are new samples and one class's count does not move another's."""

    def __init__(self, exp: Experiment, seed: int) -> None:
        self.exp, self.seed = exp, seed
        self.streams: dict[int, Generate] = {}

    def __call__(self, k: int, c: int) -> Tensor:
        if c not in self.streams:
            self.streams[c] = Generate(self.exp, self.seed + c, class_index=c)
        return self.streams[c](k)


@torch.no_grad()
def generate_from(exp: Experiment, z: Tensor, y: Tensor | None) -> Tensor:
    """The sampling generator's output for latents z (and classes y), in eval mode and the run's precision."""
    sampler = exp.sampler
    was_training = sampler.training
    sampler.eval()
    with exp.autocast():
        out = sampler(z, y).float()
    sampler.train(was_training)
    return out


def check_metric_names(exp: Experiment, names: list[str]) -> list[str]:
    """Validate metric names for this run before anything is computed: each registered, each suited to the run
    (its ``check_run``: conditional, image shape, Q head)."""
    if not names:
        return []
    exp.domain.check_metric_names(names)
    from gankit.metrics import get_metric, parse_names

    names = parse_names(names)
    for name in names:
        get_metric(name).check_run(exp)
    return names


def evaluate(exp: Experiment, step: int, n: int, *, seed: int = 0, metrics: list[str] | None = None,
             split: str | None = None, inception_weights: str | None = None, extractor: str | None = None,
             batch_size: int = 250, n_name: str = "-n", resize_protocol: str | None = None) -> dict[str, Any]:
    """The run's metrics on n samples, with the protocol: sample count, weights used, checkpoint step, precision.

    Toy runs: modes, n_modes, high_quality, reverse_kl. Image runs: per-channel pixel mean and std next to the
    data's, plus each requested metric as {"value": ..., "protocol": {...}} (gankit.metrics.compute_metrics).
    """
    from gankit.metrics import get_metric

    names = check_metric_names(exp, list(metrics or []))
    weights = "ema" if exp.ema is not None else "raw"
    scope = {name: get_metric(name).scope for name in names}
    per_class = [m for m in names if scope[m] == "per_class"]
    of_run = [m for m in names if scope[m] == "run"]
    names = [m for m in names if scope[m] == "samples"]
    resize = resize_protocol or exp.cfg.eval.protocol
    result: dict[str, Any] = {"step": step, "weights": weights, "n_samples": n,
                              "precision": str(exp.compute_dtype).removeprefix("torch.")}
    devices = [exp.device] if exp.device.type == "cuda" else []
    # Data-parallel runs: every rank holds the same networks here (Trainer averages their buffers first). Rank 0
    # computes the cheap parts alone; the image metrics' sample generation and feature extraction are sharded
    # over the ranks (compute_metrics); every rank returns the same results.
    with torch.random.fork_rng(devices=devices):
        generate = Generate(exp, seed)
        result.update(distributed.on_main(lambda: exp.domain.sample_report(exp, generate, n)))
        if names:
            from gankit.metrics import compute_metrics

            generate = Generate(exp, seed)  # the same latents again: the metrics see the first n samples
            result.update(compute_metrics(
                names, generate, n, exp.cfg.data, split=split, device=exp.device, batch_size=batch_size,
                inception_weights=inception_weights, extractor=extractor or exp.cfg.eval.extractor,
                resize_protocol=resize, protocol={"weights": weights, "step": step}, n_name=n_name))
        if per_class:
            from gankit.metrics.conditional import conditional_metrics

            result.update(distributed.on_main(lambda: conditional_metrics(
                per_class, PerClass(exp, seed + 1), exp.n_classes,
                n // exp.n_classes, exp.cfg.data, split=split, device=exp.device, batch_size=batch_size,
                extractor=extractor or exp.cfg.eval.extractor, inception_weights=inception_weights,
                protocol={"weights": weights, "step": step, "n_generated": n}, resize_protocol=resize)))
        if of_run:
            from gankit.metrics.base import RunRequest

            request = RunRequest(exp, n, seed + 3, batch_size, split, {"weights": weights, "step": step})
            for name in of_run:
                result[name] = distributed.on_main(lambda name=name: get_metric(name).compute_run(request))
    return result


def toy_class_accuracy(samples: Batch, means: Tensor, std: float, threshold: float = 3.0) -> dict[str, Any]:
    """Conditional toy runs (a mode is a class), over all samples and for each requested mode:

    * class_accuracy: the fraction of samples whose nearest mode is the one they were generated for;
    * class_high_quality: the fraction within ``threshold`` std of that mode's mean.
    """
    assert samples.y is not None
    x, y = samples.x.float().to(means.device), samples.y.to(means.device)
    nearest = torch.cdist(x, means.float()).argmin(dim=1)
    counts = torch.bincount(y, minlength=len(means)).clamp_min(1)
    out: dict[str, Any] = {}
    for name, hit in (("class_accuracy", nearest == y),
                      ("class_high_quality", (x - means[y]).norm(dim=1) <= threshold * std)):
        per_mode = torch.bincount(y, weights=hit.float(), minlength=len(means)) / counts
        out[name] = float(hit.float().mean())
        out[f"{name}_per_class"] = [round(float(v), 4) for v in per_mode]
    return out


def pixel_statistics(fake: Tensor, real: Tensor) -> dict[str, Any]:
    """Per-channel mean and std of generated and real images in [-1, 1]: a first check that samples left the
    noise and approach the data."""
    fake, real = fake.float().cpu(), real.float().cpu()
    dims = (0, 2, 3)
    return {
        "pixel_mean": [round(v, 4) for v in fake.mean(dims).tolist()],
        "pixel_std": [round(v, 4) for v in fake.std(dims).tolist()],
        "data_pixel_mean": [round(v, 4) for v in real.mean(dims).tolist()],
        "data_pixel_std": [round(v, 4) for v in real.std(dims).tolist()],
    }


def best_scalar(results: dict[str, Any], name: str) -> tuple[float, bool]:
    """(the number a `best` checkpoint compares, whether higher is better) for metric ``name``."""
    if name in TOY_BEST:
        return float(results[name]), TOY_BEST[name]
    from gankit.metrics import higher_is_better, metric_scalar

    return metric_scalar(name, results[name]), higher_is_better(name)


def scalars(results: dict[str, Any]) -> dict[str, float]:
    """Flat numbers for TensorBoard: toy metrics, and each image metric's scalar."""
    out = {k: float(v) for k, v in results.items() if k in TOY_BEST}
    for name, entry in results.items():
        if isinstance(entry, dict) and "value" in entry:
            value = entry["value"]
            if isinstance(value, (int, float)):
                out[name] = float(value)
            elif isinstance(value, dict):
                out.update({f"{name}/{k}": float(v) for k, v in value.items() if isinstance(v, (int, float))})
    return out
