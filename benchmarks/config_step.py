"""ms per G step of shipped configs as they are (their data, networks, batch, D steps and penalties), fp32 against
bf16, interleaved in one process.

    python benchmarks/config_step.py 'mnist_*' fashion_mnist_dcgan [--steps 3] [--rounds 3] [--threads 1]

Each config is built by ``Trainer.start`` (what ``gankit train`` runs) once per precision; after one warm-up step
each, the two take turns for ``--rounds`` rounds of ``--steps`` G steps of ``Trainer.train_step``, and the table
has the median of the rounds. The data must be on the machine (``$GANKIT_DATA``; nothing is downloaded).
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from gankit import config
from gankit.errors import GankitError
from gankit.precision import cpu_name
from gankit.train import Trainer

PRECISIONS = ("fp32", "bf16")
QUIET = ["train.progress=false", "train.tensorboard=false", "eval.metrics=[]", "train.device=cpu"]


def shipped() -> list[str]:
    return sorted(p.stem for p in (Path(config.__file__).parent / "configs").glob("*.yaml"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", help="shipped config names or shell patterns ('mnist_*')")
    parser.add_argument("--steps", type=int, default=3, help="G steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for pattern in args.configs for n in shipped() if fnmatch.fnmatch(n, pattern)]
    if not names:
        sys.exit(f"config_step: no shipped config matches {' '.join(args.configs)}")
    rows = []
    for name in names:
        try:
            steps = {p: Trainer.start(config.load(name, QUIET + [f"train.precision={p}"]),
                                      Path(tempfile.mkdtemp(prefix="config_step-")) / "run").train_step
                     for p in PRECISIONS}
        except GankitError as exc:
            print(f"config_step: {name}: {exc}", file=sys.stderr)
            continue
        times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        for p in PRECISIONS:
            steps[p]()
        for _ in range(args.rounds):
            for p in PRECISIONS:
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    steps[p]()
                times[p].append((time.perf_counter() - t0) / args.steps * 1000)
        ms = {p: statistics.median(v) for p, v in times.items()}
        rows.append((name, ms["fp32"], ms["bf16"]))
        print(f"{name}: fp32 {ms['fp32']:.0f} ms, bf16 {ms['bf16']:.0f} ms", file=sys.stderr, flush=True)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s); "
          f"median of {args.rounds} rounds of {args.steps} G steps (Trainer.train_step), fp32 and bf16 interleaved")
    print("| config | fp32 ms / G step | bf16 ms / G step | bf16 speed-up |")
    print("|---|---|---|---|")
    for name, fp32, bf16 in rows:
        print(f"| `{name}` | {fp32:.0f} | {bf16:.0f} | {fp32 / bf16:.2f}x |")


if __name__ == "__main__":
    main()
