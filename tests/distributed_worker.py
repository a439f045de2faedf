"""Run by torchrun in tests/test_distributed.py: `gankit ARGS...` (through gankit.cli, so errors are reported as
the command reports them), with every rank drawing its slice of one global batch, so that N processes at batch
B/N and one process at batch B see the same samples.

    torchrun --nproc-per-node N tests/distributed_worker.py train CONFIG --out DIR [KEY=VALUE ...]

The data indices and the latents of each draw come from a generator that every rank seeds alike from the G step
and the draw's index within it (so a resumed run draws what an uninterrupted one draws); rank r keeps rows
[r * B/N, (r + 1) * B/N). Snapshot and evaluation latents (drawn with their own generator) are left
as they are. With NAN_AT=RANK:DRAW, rank RANK's DRAW-th data batch is NaN.
"""
from __future__ import annotations

import os
import sys

import torch

from gankit import cli, distributed
from gankit.data.base import Batch
from gankit.prior import Latents
from gankit.train import Trainer


def arrange_draws(trainer: Trainer) -> None:
    exp = trainer.exp
    ranks, rank = distributed.world_size(), distributed.rank()
    prior_sample = exp.prior.sample
    nan_rank, nan_draw = (int(v) for v in os.environ.get("NAN_AT", "-1:-1").split(":"))
    draws = [0]
    in_step = {"step": -1, "index": 0}

    def shared() -> torch.Generator:
        if in_step["step"] != trainer.step:
            in_step.update(step=trainer.step, index=0)
        in_step["index"] += 1
        return torch.Generator().manual_seed(1_000_003 * trainer.step + in_step["index"])

    def rows(t: torch.Tensor | None, n: int) -> torch.Tensor | None:
        return None if t is None else t[rank * n:(rank + 1) * n]

    def data_sample(n: int) -> Batch:
        index = rows(torch.randint(len(exp.data), (n * ranks,), generator=shared()), n)
        labels = exp.data.labels[index] if exp.data.labels is not None else None
        x = exp.data.x[index].float().to(exp.device)
        draws[0] += 1
        if rank == nan_rank and draws[0] == nan_draw:
            x = torch.full_like(x, float("nan"))
        return Batch(x, labels)

    def latents(n: int, device: torch.device, generator: torch.Generator | None = None) -> Latents:
        if generator is not None:  # snapshots and evaluation
            return prior_sample(n, device, generator)
        z, y = prior_sample(n * ranks, device, shared())
        return Latents(rows(z, n), rows(y, n))

    exp.data.sample = data_sample
    exp.prior.sample = latents


fit = Trainer.fit


def arranged_fit(self: Trainer):  # noqa: ANN201
    arrange_draws(self)
    return fit(self)


if __name__ == "__main__":
    Trainer.fit = arranged_fit
    sys.exit(cli.main(sys.argv[1:]))
