"""A run directory on disk: its layout and checkpoints (atomic, data-only); experiment.load_run loads a run back.

    DIR/config.yaml            the fully resolved config
    DIR/metrics.jsonl          one JSON object per logging point, each with "step"
    DIR/checkpoints/last.pt    networks and optimisers by name, EMA, regularizer and term state, RNG states, step
    DIR/samples/               snapshots (step_XXXXXX.npz) and figures
    DIR/tensorboard/           TensorBoard events
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from gankit import config as config_mod
from gankit.config import Config
from gankit.errors import ConfigError, GankitError
from gankit.io import atomic_path

FORMAT = "gankit-checkpoint-2"  # 2: networks and optimisers by name (conditional runs, extra networks)


class RunDir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    config = property(lambda self: self.root / "config.yaml")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    checkpoint = property(lambda self: self.root / "checkpoints" / "last.pt")
    best_checkpoint = property(lambda self: self.root / "checkpoints" / "best.pt")
    samples = property(lambda self: self.root / "samples")
    tensorboard = property(lambda self: self.root / "tensorboard")
    eval = property(lambda self: self.root / "eval.json")

    def snapshot(self, step: int) -> Path:
        return self.samples / f"step_{step:06d}.npz"

    def grid(self, step: int) -> Path:
        return self.samples / f"step_{step:06d}.png"

    def snapshots(self) -> list[tuple[int, Path]]:
        return sorted((int(p.stem.split("_")[1]), p) for p in self.samples.glob("step_*.npz"))

    def grids(self) -> list[tuple[int, Path]]:
        return sorted((int(p.stem.split("_")[1]), p) for p in self.samples.glob("step_*.png"))

    def holds_run(self) -> bool:
        return self.config.exists() or self.checkpoint.exists()

    def load_config(self, overrides: list[str] | None = None) -> Config:
        if not self.root.is_dir():
            raise GankitError(f"run directory {self.root} does not exist")
        if not self.config.is_file():
            raise GankitError(f"{self.root} is not a gankit run: {self.config} is missing")
        try:
            return config_mod.load(base=config_mod.read_yaml(self.config), overrides=overrides)
        except ConfigError as exc:
            raise GankitError(f"{self.config}: {exc}") from None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load with weights_only=True: a checkpoint is data, so a file from a stranger cannot run code."""
    if not path.is_file():
        raise GankitError(f"no checkpoint at {path}: the run has not saved one yet")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GankitError(f"checkpoint {path} is corrupted or not a gankit checkpoint ({reason[:160]})") from None
    if isinstance(state, dict) and state.get("format") == "gankit-checkpoint-1":
        raise GankitError(f"checkpoint {path} was written by an older gankit (format 1, before named networks); "
                          "retrain the run with this version")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GankitError(f"checkpoint {path} is not a gankit checkpoint (format {FORMAT} expected)")
    return state


def save_snapshot(path: Path, samples: torch.Tensor) -> None:
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, samples=samples.detach().float().cpu().numpy())


def dump_config(path: Path, cfg: Config) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
