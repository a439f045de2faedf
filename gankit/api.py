"""The Python API that the `gankit` command wraps: train, sample and evaluate runs."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.errors import GankitError
from gankit.experiment import Experiment, restore
from gankit.io import atomic_path
from gankit.run import RunDir
from gankit.evaluation import Generate, evaluate
from gankit.train import train

__all__ = ["train", "load_trained", "sample", "evaluate_run", "write_samples"]


def load_trained(run_dir: Path, device: str = "auto", checkpoint: str = "last") -> tuple[Experiment, int]:
    """Rebuild a run from its config.yaml and load its last (or best) checkpoint on ``device``."""
    run = RunDir(run_dir)
    cfg = run.load_config()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=device))
    exp, state = restore(cfg, run.best_checkpoint if checkpoint == "best" else run.checkpoint)
    return exp, int(state["step"])


@torch.no_grad()
def sample(exp: Experiment, n: int, seed: int = 0, batch_size: int = 4096) -> torch.Tensor:
    """n samples (on the CPU) from the run's sampling generator (EMA weights when enabled), reproducible by seed."""
    if n < 1:
        raise GankitError(f"-n must be >= 1, got {n}")
    return Generate(exp, seed).many(n, batch_size).cpu()


def evaluate_run(run_dir: Path, n: int | None = None, seed: int = 0, metrics: str | list[str] | None = None,
                 split: str | None = None, inception_weights: str | None = None, best: bool = False,
                 batch_size: int = 250, extractor: str | None = None) -> dict[str, Any]:
    """Evaluate a run's last (or best) checkpoint on n samples; metrics default to the config's eval.metrics."""
    exp, step = load_trained(run_dir, checkpoint="best" if best else "last")
    n = exp.cfg.eval.n_samples if n is None else n
    if n < 2:
        raise GankitError(f"-n must be >= 2, got {n}")
    if isinstance(metrics, str):
        metrics = [m for m in metrics.split(",") if m.strip()]
    names = exp.cfg.eval.metrics if metrics is None else metrics
    result = evaluate(exp, step, n, seed=seed, metrics=names, split=split,
                      inception_weights=inception_weights or exp.cfg.eval.inception_weights, extractor=extractor,
                      batch_size=batch_size)
    return {"run": str(run_dir), "checkpoint": "best" if best else "last", **result}


def write_samples(run_dir: Path, n: int, out: Path, seed: int = 0) -> Path:
    """Write n samples. Toy runs: ``.npz`` (float array 'samples') or a ``.png`` scatter plot. Image runs:
    ``.npz`` (uint8 NCHW array 'samples'), a ``.png`` grid, or a folder (no suffix) of one PNG per sample."""
    from gankit import viz
    from gankit.data.base import to_uint8

    suffix = out.suffix.lower()
    if suffix not in (".npz", ".png", ""):
        raise GankitError(f"--out {out}: unsupported file type '{suffix}'; use .npz, .png or a folder name")
    if suffix and out.is_dir():
        raise GankitError(f"--out {out} is a directory; give a file name ending in .npz or .png")
    exp, step = load_trained(run_dir)
    if not suffix and exp.data.kind == "toy":
        raise GankitError(f"--out {out}: a toy run writes .npz or .png, not a folder of images")
    if not suffix and out.exists() and any(out.iterdir()):
        raise GankitError(f"--out {out} is a folder that is not empty")
    samples = sample(exp, n, seed)
    if exp.data.kind == "image":
        samples = to_uint8(samples)
    if suffix == ".npz":
        with atomic_path(out) as tmp:
            np.savez_compressed(tmp, samples=samples.numpy())
    elif suffix == ".png" and exp.data.kind == "toy":
        real = exp.data.real_batch(max(n, 2500)).cpu().numpy()
        viz.toy_scatter(samples.numpy(), real, out, f"{exp.cfg.name}: {n} samples at step {step}")
    elif suffix == ".png":
        viz.save_png(viz.image_grid(samples.float() / 127.5 - 1), out)
    else:
        write_image_folder(samples, out)
    return out


def write_image_folder(images: torch.Tensor, out: Path) -> None:
    """One PNG per image, written into a temporary folder that is renamed into place when complete."""
    import shutil
    import tempfile

    from gankit import viz

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        width = len(str(len(images) - 1))
        for i, image in enumerate(images):
            viz.save_png(image, tmp / f"{i:0{width}d}.png")
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
