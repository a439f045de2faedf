"""Fingerprint the weights every shipped 2-D config (and mnist_dcgan) ends with after a short fixed-seed run, to
show that an engine change changes no numbers where none is meant.

    python benchmarks/weights_equal.py --save before.pt          # on the old code
    python benchmarks/weights_equal.py --compare before.pt       # on the new code: a table of max |difference|

Every run: train.steps=50 (the configs' own batch, n_critic, optimiser), train.seed=0, fp32, no evaluation
metrics; the final checkpoint's networks are compared tensor by tensor.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

from gankit import config as config_mod
from gankit.train import Trainer

DATA = Path(os.environ.get("GANKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def configs(include_images: bool) -> list[str]:
    names = []
    for name in config_mod.shipped_configs():
        cfg = config_mod.load(name)
        if cfg.data["name"] in ("ring", "grid", "ring8", "grid25") or cfg.data["name"].startswith(("ring", "grid")):
            names.append(name)
    if include_images:
        names.append("mnist_dcgan")
    return names


def run(name: str, steps: int, root: Path) -> dict[str, torch.Tensor]:
    overrides = [f"train.steps={steps}", "train.seed=0", "train.precision=fp32", "train.progress=false",
                 "train.tensorboard=false", "train.snapshot_steps=[]", "eval.metrics=[]", "eval.n_samples=500",
                 f"train.checkpoint_every={steps}"]
    if name.startswith("mnist"):
        overrides += [f"data.root={root / 'mnist_root'}"]
    cfg = config_mod.load(name, overrides)
    trainer = Trainer.start(cfg, root / name)
    trainer.fit()
    return {f"{net}.{k}": v.detach().clone() for net, m in trainer.exp.networks.items()
            for k, v in m.state_dict().items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--save", type=Path)
    p.add_argument("--compare", type=Path)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--no-images", action="store_true")
    p.add_argument("--only", nargs="*")
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    names = a.only or configs(include_images=not a.no_images)
    reference = torch.load(a.compare) if a.compare else {}
    results: dict[str, dict[str, torch.Tensor]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not a.no_images and (DATA / "mnist").is_dir():
            raw = root / "mnist_root" / "MNIST" / "raw"
            raw.mkdir(parents=True)
            import gzip
            for f in (DATA / "mnist").glob("*.gz"):
                (raw / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
        print("| config | tensors | max abs difference |")
        print("|---|---|---|")
        for name in names:
            w = run(name, a.steps, root)
            results[name] = w
            if name in reference:
                ref = reference[name]
                keys = sorted(set(ref) | set(w))
                missing = [k for k in keys if k not in ref or k not in w]
                diff = max((float((ref[k].float() - w[k].float()).abs().max()) for k in keys
                            if k in ref and k in w and ref[k].numel()), default=0.0)
                print(f"| {name} | {len(w)} | {diff:.3g}{' (keys differ: ' + missing[0] + ')' if missing else ''} |",
                      flush=True)
            else:
                print(f"| {name} | {len(w)} | (saved) |", flush=True)
            if a.save:  # after each config: a later failure keeps what ran
                torch.save(results, a.save)


if __name__ == "__main__":
    sys.exit(main())
