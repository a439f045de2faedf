"""Run the reference's own VEEGAN on Ring8 (xyfJASON/GANs-Implementations, scripts/train_veegan.py with
configs/veegan_ring8.yaml) for several seeds and score its checkpoints with gankit's toy metrics, so its
numbers stand beside `gankit study ring_veegan` measured the same way (docs/veegan.md).

    python scripts/veegan_reference.py --reference CHECKOUT --python REF_PYTHON [--seeds 5678,5679,5680]
                                       [--out runs/veegan_reference]

CHECKOUT is a checkout of the reference (read-only, never committed); REF_PYTHON an interpreter with its
requirements (yacs, accelerate, torchvision, matplotlib, tensorboard). Each seed runs the reference's script
unchanged, with `seed S`, `train.save_freq 200` (a checkpoint at each of the README's steps 199, 399, ..., 4999;
saving draws no random numbers) and `dataloader.num_workers 0` (no worker processes: the loader then draws no
worker seeds from torch's RNG, so the run's random stream is not the reference default's, its algorithm is).
A seed whose last checkpoint exists is not run again, nor one already scored in OUT/results.json (so a copy of
docs/studies/veegan/results_reference_script.json there lets a new machine run only the missing seeds); a stopped
one is restarted from scratch. Every checkpoint
is then scored here: G in eval mode (as the reference samples), 2,500 samples from z ~ N(0, I) drawn from a
generator seeded 0, `toy_metrics` against Ring8's means and std in the reference's scaled units (radius 10/15,
std 0.5/15), as gankit's snapshots of `ring_veegan`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from gankit.data.toy import ring_means
from gankit.metrics.toy import toy_metrics

CONFIG = "configs/veegan_ring8.yaml"
RADIUS, STD = 10 / 15, 0.5 / 15


def train_seed(reference: Path, python: str, seed: int, exp: Path, steps: int) -> None:
    last = exp / "ckpt" / f"step{steps - 1:06d}" / "model.pt"
    if last.is_file():
        print(f"veegan_reference: seed {seed}: done earlier ({last})", file=sys.stderr)
        return
    if exp.exists():  # stopped midway: the reference script refuses an existing folder, so start over
        shutil.rmtree(exp)
    cmd = [python, "scripts/train_veegan.py", "-c", CONFIG, "-e", str(exp.resolve()), "-ni", "seed", str(seed),
           "train.n_steps", str(steps), "train.save_freq", "200", "dataloader.num_workers", "0",
           "dataloader.prefetch_factor", "None"]
    print(f"veegan_reference: seed {seed}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=reference, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def score(reference: Path, exp: Path) -> dict[int, dict[str, float]]:
    """gankit's toy metrics of every checkpoint of one run, by step (counted from 1, as gankit's snapshots)."""
    sys.path.insert(0, str(reference))
    from models.simple_mlp_veegan import GeneratorVEEGAN  # the reference's own class

    means = ring_means(8, RADIUS)
    out = {}
    for ckpt in sorted((exp / "ckpt").glob("step*")):
        G = GeneratorVEEGAN(z_dim=32, out_dim=2, dim=256, dim_mults=[1, 1, 1], with_bn=True, with_tanh=True)
        G.load_state_dict(torch.load(ckpt / "model.pt", map_location="cpu", weights_only=True)["G"])
        G.eval()
        with torch.no_grad():
            z = torch.randn(2500, 32, generator=torch.Generator().manual_seed(0))
            out[int(ckpt.name[4:]) + 1] = toy_metrics(G(z), means, STD)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--python", default=sys.executable, help="the reference's interpreter")
    parser.add_argument("--seeds", default="5678,5679,5680")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("runs/veegan_reference"))
    args = parser.parse_args()
    if not (args.reference / "scripts" / "train_veegan.py").is_file():
        sys.exit(f"veegan_reference: --reference {args.reference}: no scripts/train_veegan.py there")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    args.out.mkdir(parents=True, exist_ok=True)
    kept = args.out / "results.json"
    results = {}
    if kept.is_file():  # JSON keys are strings: back to the ints used here
        results = {int(s): {int(k): v for k, v in r.items()} for s, r in json.loads(kept.read_text()).items()}
    for seed in seeds:
        exp = args.out / f"seed_{seed}"
        if seed in results and not exp.exists():
            print(f"veegan_reference: seed {seed}: scored earlier ({kept})", file=sys.stderr)
            continue
        train_seed(args.reference, args.python, seed, exp, args.steps)
        results[seed] = score(args.reference, exp)
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
    steps = sorted(set.intersection(*(set(r) for r in results.values())))
    print(f"| G step | modes ({', '.join(map(str, seeds))}) | high-quality fraction | reverse KL (mean) |")
    print("|---|---|---|---|")
    for step in steps:
        rows = [results[s][step] for s in seeds]
        modes = ", ".join(str(r["modes"]) for r in rows)
        quality = ", ".join(f"{r['high_quality']:.2f}" for r in rows)
        print(f"| {step:,} | {modes} | {quality} | {statistics.fmean(r['reverse_kl'] for r in rows):.3f} |")


if __name__ == "__main__":
    main()
