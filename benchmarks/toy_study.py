"""The 2-D mode-collapse study: train every shipped ring_* and grid_* config and print one results table.

    python benchmarks/toy_study.py --out runs/study [--jobs 4] [--only ring] [KEY=VALUE ...]

Each config trains in its own process (`gankit train CONFIG --out OUT/CONFIG`); the table lists the final
metrics of each run (2,500 samples, fixed latents, the protocol of docs/toy.md) and the wall time. One figure
per dataset (OUT/study_ring.png, OUT/study_grid.png) stacks the runs' sample strips.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from gankit.config import shipped_configs


def train_one(name: str, out: Path, overrides: list[str]) -> tuple[str, dict, float]:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "gankit", "train", name, "--out", str(out / name), "train.progress=false",
           "train.tensorboard=false", *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        return name, {"error": result.stderr.strip().splitlines()[-1]}, seconds
    return name, json.loads(result.stdout.strip().splitlines()[-1]), seconds


def study_figure(names: list[str], out: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gankit.api import load_trained

    rows = [n for n in names if (out / n / "samples").is_dir()]
    if not rows:
        return
    snaps = {n: sorted((out / n / "samples").glob("step_*.npz")) for n in rows}
    cols = max(len(v) for v in snaps.values())
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, 1.9 * len(rows)), squeeze=False)
    for r, name in enumerate(rows):
        exp, _ = load_trained(out / name, device="cpu")
        real = exp.data.real_batch(2500).numpy()
        lim = float(np.abs(real).max()) * 1.35
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            if c < len(snaps[name]):
                fake = np.load(snaps[name][c])["samples"]
                ax.scatter(real[:, 0], real[:, 1], s=1, c="#1f77b4", alpha=0.3, linewidths=0)
                ax.scatter(fake[:, 0], fake[:, 1], s=1, c="#d62728", alpha=0.5, linewidths=0)
                ax.set_title(f"{name} {int(snaps[name][c].stem.split('_')[1])}", fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/study"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", choices=["ring", "grid"], default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    names = [n for n in shipped_configs() if n.startswith(("ring_", "grid_")) and
             (args.only is None or n.startswith(args.only))]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda n: train_one(n, args.out, args.overrides), names))
    print("| config | modes | high-quality fraction | reverse KL | wall s |")
    print("|---|---|---|---|---|")
    for name, r, seconds in results:
        if "error" in r:
            print(f"| {name} | error: {r['error']} | | | {seconds:.0f} |")
        else:
            print(f"| {name} | {r['modes']}/{r['n_modes']} | {r['high_quality']:.3f} | {r['reverse_kl']:.3f} | {seconds:.0f} |")
    for ds in ("ring", "grid"):
        study_figure([n for n in names if n.startswith(ds)], args.out, args.out / f"study_{ds}.png")


if __name__ == "__main__":
    main()
