"""What differs between 2-D point data and images, in one object per kind of data, so that the trainer, the
sampler and the evaluation never branch on ``data.kind``.

A dataset declares its ``kind``; ``domain_of(data)`` gives the matching ``Domain``: the fixed latents of its
snapshots, what a snapshot writes, the figures at the end of a run, the metrics ``eval.best`` may name, and how
``gankit sample`` writes samples. A new kind of data (audio, 3-D points) is a new Domain registered in DOMAINS.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from gankit import viz
from gankit.errors import GankitError
from gankit.prior import Latents

if TYPE_CHECKING:
    from gankit.experiment import Experiment
    from gankit.train import Trainer

# Toy runs' scalar metrics that eval.best may name, and whether higher is better.
TOY_BEST = {"modes": True, "high_quality": True, "reverse_kl": False, "class_accuracy": True}


class Domain:
    kind = "base"
    #: the output types `gankit sample --out` accepts ("" = a folder of files)
    sample_suffixes: tuple[str, ...] = (".npz", ".png")

    def fixed_latents(self, exp: "Experiment", generator: torch.Generator) -> Latents:
        raise NotImplementedError

    def snapshot(self, trainer: "Trainer", samples: Tensor) -> None:
        raise NotImplementedError

    def final_figures(self, trainer: "Trainer") -> None:
        raise NotImplementedError

    def best_metrics(self, exp: "Experiment", eval_metrics: list[str]) -> list[str]:
        raise NotImplementedError

    def to_output(self, samples: Tensor) -> Tensor:
        """Samples as `gankit sample` writes them."""
        return samples

    def check_metric_names(self, names: list[str]) -> None:
        """Raise a one-line GankitError when this kind of data cannot report the registered metrics ``names``."""

    def sample_report(self, exp: "Experiment", generate: Any, n: int) -> dict[str, Any]:
        """What every evaluation reports from n samples of ``generate`` (gankit.evaluation.Generate), before any
        registered metric."""
        raise NotImplementedError

    def write_png(self, exp: "Experiment", samples: Tensor, out: Path, title: str, per_class: bool) -> None:
        raise NotImplementedError


class Points(Domain):
    """2-D mixtures: snapshots are .npz files of eval.n_samples points; the run ends with a strip of scatter plots;
    the metrics are the mode metrics."""

    kind = "toy"

    def fixed_latents(self, exp: "Experiment", generator: torch.Generator) -> Latents:
        return exp.prior.sample(exp.cfg.eval.n_samples, exp.device, generator)

    def snapshot(self, trainer: "Trainer", samples: Tensor) -> None:
        from gankit.run import save_snapshot

        save_snapshot(trainer.run.snapshot(trainer.step), samples)

    def final_figures(self, trainer: "Trainer") -> None:
        real = trainer.exp.data.real_batch(trainer.cfg.eval.n_samples).cpu().numpy()
        snaps = [(step, np.load(path)["samples"]) for step, path in trainer.run.snapshots()]
        viz.toy_strip(snaps, real, trainer.run.samples / "strip.png", title=trainer.cfg.name)

    def best_metrics(self, exp: "Experiment", eval_metrics: list[str]) -> list[str]:
        return [m for m in TOY_BEST if exp.conditional or not m.startswith("class_")]

    def check_metric_names(self, names: list[str]) -> None:
        if names:
            raise GankitError(f"metrics {', '.join(names)} are for image runs; toy runs report modes, high_quality "
                              "and reverse_kl")

    def sample_report(self, exp: "Experiment", generate: Any, n: int) -> dict[str, Any]:
        """The mode metrics (gankit.metrics.toy), and in a conditional run the per-class accuracy."""
        from gankit.evaluation import toy_class_accuracy
        from gankit.metrics.toy import toy_metrics

        samples = generate.many(n)
        means, std = exp.data.info["means"], exp.data.info["std"]
        out = toy_metrics(samples.x, means, std)
        if exp.conditional:
            out.update(toy_class_accuracy(samples, means, std))
        return out

    def write_png(self, exp: "Experiment", samples: Tensor, out: Path, title: str, per_class: bool) -> None:
        real = exp.data.real_batch(max(len(samples), 2500)).cpu().numpy()
        viz.toy_scatter(samples.numpy(), real, out, title)


class Images(Domain):
    """Images: snapshots are PNG grids (one row per class in a conditional run, per value of the first categorical
    code in an InfoGAN run) also sent to TensorBoard; the run ends with a GIF of the grids; the metrics are
    eval.metrics; samples are written as uint8."""

    kind = "image"
    sample_suffixes = (".npz", ".png", "")

    def fixed_latents(self, exp: "Experiment", generator: torch.Generator) -> Latents:
        return exp.prior.grid(exp.cfg.eval.grid_size, exp.device, generator)

    def snapshot(self, trainer: "Trainer", samples: Tensor) -> None:
        exp = trainer.exp
        values = exp.prior.grid_values  # one row per class or categorical code value (Prior.grid)
        per_row = len(samples) // values if values else None
        grid = viz.image_grid(samples, nrow=per_row or None)
        viz.save_png(grid, trainer.run.grid(trainer.step))
        writer = trainer.tracker.writer if trainer.tracker is not None else None
        if writer is not None:
            writer.add_image("samples", grid, trainer.step)

    def final_figures(self, trainer: "Trainer") -> None:
        viz.progress_gif([path for _, path in trainer.run.grids()], trainer.run.samples / "progress.gif")
        exp = trainer.exp
        if exp.prior.codes.continuous:  # InfoGAN: each continuous code's traversal, as `gankit sample --traversal`
            from gankit.evaluation import generate_from
            from gankit.traversal import traversal_latents

            for code in range(exp.prior.codes.continuous):
                z = traversal_latents(exp.prior, code, columns=10, span=1.0, seed=0, device=exp.device)
                viz.save_png(viz.image_grid(generate_from(exp, z, None), nrow=10),
                             trainer.run.samples / f"traversal_c{code}.png")

    def best_metrics(self, exp: "Experiment", eval_metrics: list[str]) -> list[str]:
        return eval_metrics

    def sample_report(self, exp: "Experiment", generate: Any, n: int) -> dict[str, Any]:
        """Per-channel pixel statistics of up to 5,000 samples next to the data's (gankit.evaluation)."""
        from gankit.evaluation import pixel_statistics

        k = min(n, 5000)
        return pixel_statistics(generate.many(k).x, exp.data.real_batch(k))

    def to_output(self, samples: Tensor) -> Tensor:
        from gankit.data.base import to_uint8

        return to_uint8(samples)

    def write_png(self, exp: "Experiment", samples: Tensor, out: Path, title: str, per_class: bool) -> None:
        viz.save_png(viz.image_grid(samples.float() / 127.5 - 1, nrow=len(samples) // exp.n_classes
                                    if per_class and exp.n_classes else None), out)


DOMAINS: dict[str, Domain] = {d.kind: d for d in (Points(), Images())}


def domain_of(data: Any) -> Domain:
    try:
        return DOMAINS[data.kind]
    except KeyError:
        raise GankitError(f"data of kind '{data.kind}' has no domain; known: {', '.join(DOMAINS)}") from None
