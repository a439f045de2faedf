"""Wall time of N seeds trained together (gankit study --seeds N) against one seed, per G step.

    python benchmarks/seed_batch.py [--configs ring_gan,ring_gan_r1] [--seeds 10] [--steps 40] [KEY=VALUE ...]

For each config: the training loop alone (no snapshots, no evaluation), one seed with the ordinary Trainer,
then N seeds as one stacked model; each timing is the minimum over --repeats blocks of --steps G steps, after
a warm-up block. The ratio is (time of N seeds) / (time of one seed); N separate processes would be N.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from gankit import config as config_mod
from gankit.experiment import Experiment
from gankit.run import RunDir
from gankit.study.seeds import StackedTrainer, stack_experiments, with_seed
from gankit.study.stack import RngStates
from gankit.train import Trainer


def per_step(trainer: Trainer, steps: int, repeats: int) -> float:
    def block() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()  # the step function `gankit train` and `gankit study` run
        return (time.perf_counter() - start) / steps

    block()  # warm-up
    return min(block() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="main,ring_gan")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"| config | 1 seed (ms / G step) | {args.seeds} seeds batched (ms / G step) | ratio |")
    print("|---|---|---|---|")
    for name in args.configs.split(","):
        cfg = config_mod.load(name, args.overrides)
        one = per_step(Trainer(Experiment(cfg), RunDir(tmp / name)), args.steps, args.repeats)
        exps, states = [], []
        for s in range(args.seeds):
            exps.append(Experiment(with_seed(cfg, s)))
            states.append(RngStates.current(exps[-1].device))
        views = [Trainer(e, RunDir(tmp / f"{name}_{i}")) for i, e in enumerate(exps)]
        rngs = RngStates(states, exps[0].device)
        many = per_step(StackedTrainer(stack_experiments(exps, rngs), views, rngs), args.steps, args.repeats)
        print(f"| {name} | {one * 1e3:.1f} | {many * 1e3:.1f} | {many / one:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
