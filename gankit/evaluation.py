"""Evaluating a generator: toy mode metrics, image pixel statistics, and the image metrics of gankit.metrics,
each result carrying its protocol. Used at the end of training, every ``eval.every`` G steps, and by
`gankit eval`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.errors import GankitError
from gankit.experiment import Experiment
from gankit.metrics.toy import toy_metrics

# Toy metrics that a `best` checkpoint can follow, with their direction (True: higher is better).
TOY_BEST = {"modes": True, "high_quality": True, "reverse_kl": False}


class Generate:
    """k samples at a time from the run's sampling generator (EMA weights when enabled), with latents from a
    generator of their own: evaluating never moves the training RNG, so a resumed run stays identical."""

    def __init__(self, exp: Experiment, seed: int) -> None:
        self.exp = exp
        self.rng = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def __call__(self, k: int) -> Tensor:
        z = torch.randn(k, self.exp.cfg.model.z_dim, generator=self.rng).to(self.exp.device)
        sampler = self.exp.sampler
        was_training = sampler.training
        sampler.eval()
        with self.exp.autocast():
            out = sampler(z).float()
        sampler.train(was_training)
        return out

    def many(self, n: int, batch_size: int = 1000) -> Tensor:
        return torch.cat([self(min(batch_size, n - i)) for i in range(0, n, batch_size)])


def check_metric_names(exp: Experiment, names: list[str]) -> list[str]:
    """Validate metric names for this run before anything is computed."""
    if not names:
        return []
    if exp.data.kind == "toy":
        raise GankitError(f"metrics {', '.join(names)} are for image runs; toy runs report modes, high_quality "
                          "and reverse_kl")
    from gankit.metrics import parse_names

    return parse_names(names)


def evaluate(exp: Experiment, step: int, n: int, *, seed: int = 0, metrics: list[str] | None = None,
             split: str | None = None, inception_weights: str | None = None, extractor: str | None = None,
             batch_size: int = 250, n_name: str = "-n") -> dict[str, Any]:
    """The run's metrics on n samples, with the protocol: sample count, weights used, checkpoint step, precision.

    Toy runs: modes, n_modes, high_quality, reverse_kl. Image runs: per-channel pixel mean and std next to the
    data's, plus each requested metric as {"value": ..., "protocol": {...}} (gankit.metrics.compute_metrics).
    """
    names = check_metric_names(exp, list(metrics or []))
    weights = "ema" if exp.ema is not None else "raw"
    result: dict[str, Any] = {"step": step, "weights": weights, "n_samples": n,
                              "precision": str(exp.compute_dtype).removeprefix("torch.")}
    devices = [exp.device] if exp.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        generate = Generate(exp, seed)
        if exp.data.kind == "toy":
            result.update(toy_metrics(generate.many(n), exp.data.info["means"], exp.data.info["std"]))
            return result
        result.update(pixel_statistics(generate.many(min(n, 5000)), exp.data.real_batch(min(n, 5000))))
        if names:
            from gankit.metrics import compute_metrics

            generate = Generate(exp, seed)  # the same latents again: the metrics see the first n samples
            result.update(compute_metrics(
                names, generate, n, exp.cfg.data, split=split, device=exp.device, batch_size=batch_size,
                inception_weights=inception_weights, extractor=extractor or exp.cfg.eval.extractor,
                protocol={"weights": weights, "step": step}, n_name=n_name))
    return result


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
    from gankit.metrics import HIGHER_IS_BETTER, metric_scalar

    return metric_scalar(name, results[name]), HIGHER_IS_BETTER[name]


def scalars(results: dict[str, Any]) -> dict[str, float]:
    """Flat numbers for TensorBoard: toy metrics, and each image metric's scalar."""
    out = {k: float(v) for k, v in results.items() if k in ("modes", "high_quality", "reverse_kl")}
    for name, entry in results.items():
        if isinstance(entry, dict) and "value" in entry:
            value = entry["value"]
            if isinstance(value, (int, float)):
                out[name] = float(value)
            elif isinstance(value, dict):
                out.update({f"{name}/{k}": float(v) for k, v in value.items() if isinstance(v, (int, float))})
    return out


def resolve_path(path: str | None) -> str | None:
    return str(Path(path).expanduser()) if path else None
