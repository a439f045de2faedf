"""The Python API that the `gankit` command wraps: train, sample and evaluate runs."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gankit.data.base import Batch
from gankit.errors import GankitError
from gankit.evaluation import Generate, evaluate
from gankit.experiment import Experiment, load_run
from gankit.io import atomic_path, make_folder
from gankit.train import train

__all__ = ["train", "load_trained", "sample", "evaluate_run", "write_samples"]


def load_trained(run_dir: Path, device: str = "auto", checkpoint: Literal["last", "best"] = "last"
                 ) -> tuple[Experiment, int]:
    """Rebuild a run from its config.yaml and load its last (or best) checkpoint on ``device``."""
    loaded = load_run(run_dir, checkpoint=checkpoint, device=device)
    return loaded.exp, loaded.step


@torch.no_grad()
def sample(exp: Experiment, n: int, seed: int = 0, batch_size: int = 4096, class_index: int | None = None,
           per_class: bool = False) -> Batch:
    """Samples (on the CPU) from the run's sampling generator (EMA weights when enabled), reproducible by seed,
    with their classes (None for an unconditional run). ``class_index``: n samples of that class; ``per_class``:
    n samples of each class, class by class."""
    if n < 1:
        raise GankitError(f"-n must be >= 1, got {n}")
    if per_class:
        if class_index is not None:
            raise GankitError("give --class K or --per-class, not both")
        if not exp.conditional:
            raise GankitError("--per-class needs a conditional run (model.conditional: true)")
        parts = [Generate(exp, seed, class_index=c).many(n, batch_size) for c in range(exp.n_classes)]
        return Batch(torch.cat([p.x for p in parts]).cpu(), torch.cat([p.y for p in parts]).cpu())
    x, y = Generate(exp, seed, class_index=class_index).many(n, batch_size)
    return Batch(x.cpu(), y.cpu() if y is not None else None)


def evaluate_run(run_dir: Path, n: int | None = None, seed: int = 0, metrics: str | list[str] | None = None,
                 split: str | None = None, inception_weights: str | None = None, best: bool = False,
                 batch_size: int = 250, extractor: str | None = None, protocol: str | None = None) -> dict[str, Any]:
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
                      batch_size=batch_size, resize_protocol=protocol)
    return {"run": str(run_dir), "checkpoint": "best" if best else "last", **result}


def write_samples(run_dir: Path, n: int, out: Path, seed: int = 0, class_index: int | None = None,
                  per_class: bool = False) -> Path:
    """Write n samples (n of class K with ``class_index``; n of each class with ``per_class``). Toy runs:
    ``.npz`` (float array 'samples') or a ``.png`` scatter plot. Image runs: ``.npz`` (uint8 NCHW array
    'samples'), a ``.png`` grid (one row per class with ``per_class``), or a folder (no suffix) of one PNG per
    sample. A conditional run's .npz also holds 'labels', and its folder names each file after its class."""
    suffix = out.suffix.lower()
    if suffix not in (".npz", ".png", ""):  # what any domain writes; the run's domain narrows it below
        raise GankitError(f"--out {out}: unsupported file type '{suffix}'; use .npz, .png or a folder name")
    if suffix and out.is_dir():
        raise GankitError(f"--out {out} is a directory; give a file name ending in .npz or .png")
    if not suffix and out.exists() and not out.is_dir():
        raise GankitError(f"--out {out} is a file; a folder name (no suffix) writes one PNG per sample")
    exp, step = load_trained(run_dir)
    if suffix not in exp.domain.sample_suffixes:
        raise GankitError(f"--out {out}: a toy run writes .npz or .png, not a folder of images")
    if not suffix and out.exists() and any(out.iterdir()):
        raise GankitError(f"--out {out} is a folder that is not empty")
    samples, labels = sample(exp, n, seed, class_index=class_index, per_class=per_class)
    samples = exp.domain.to_output(samples)
    if suffix == ".npz":
        arrays = {"samples": samples.numpy(), **({"labels": labels.numpy()} if labels is not None else {})}
        with atomic_path(out) as tmp:
            np.savez_compressed(tmp, **arrays)
    elif suffix == ".png":
        what = f"class {class_index}" if class_index is not None else "per class" if per_class else ""
        title = f"{exp.cfg.name}: {n} samples {what} at step {step}".replace("  ", " ")
        exp.domain.write_png(exp, samples, out, title, per_class)
    else:
        write_image_folder(samples, out, labels)
    return out


def write_image_folder(images: torch.Tensor, out: Path, labels: torch.Tensor | None = None) -> None:
    """One PNG per image (NNN.png, or NNN_class-K.png with labels), written into a temporary folder that is
    renamed into place when complete."""
    import shutil
    import tempfile

    from gankit import viz

    make_folder(out.parent, f"--out {out}")
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        width = len(str(len(images) - 1))
        for i, image in enumerate(images):
            tag = f"_class-{int(labels[i])}" if labels is not None else ""
            viz.save_png(image, tmp / f"{i:0{width}d}{tag}.png")
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
