"""Run by torchrun in tests/test_distributed.py: trains a config with every rank drawing its slice of one global
batch, so that N processes at batch B/N and one process at batch B see the same samples.

    torchrun --nproc-per-node N tests/distributed_worker.py OUT CONFIG [KEY=VALUE ...]

The data indices and the latents of each draw come from one generator that every rank advances alike; rank r
keeps rows [r * B/N, (r + 1) * B/N). Snapshot and evaluation latents (drawn with their own generator) are left
as they are.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from gankit import config as config_mod
from gankit import distributed
from gankit.data.base import Batch
from gankit.prior import Latents
from gankit.train import Trainer


def main() -> None:
    out, name, *overrides = sys.argv[1:]
    trainer = Trainer.start(config_mod.load(name, overrides), Path(out))
    exp = trainer.exp
    ranks, rank = distributed.world_size(), distributed.rank()
    shared = torch.Generator().manual_seed(1234)
    prior_sample = exp.prior.sample

    def rows(t: torch.Tensor | None, n: int) -> torch.Tensor | None:
        return None if t is None else t[rank * n:(rank + 1) * n]

    def data_sample(n: int) -> Batch:
        index = rows(torch.randint(len(exp.data), (n * ranks,), generator=shared), n)
        labels = exp.data.labels[index] if exp.data.labels is not None else None
        return Batch(exp.data.x[index].float(), labels)

    def latents(n: int, device: torch.device, generator: torch.Generator | None = None) -> Latents:
        if generator is not None:  # snapshots and evaluation
            return prior_sample(n, device, generator)
        z, y = prior_sample(n * ranks, device, shared)
        return Latents(rows(z, n), rows(y, n))

    exp.data.sample = data_sample
    exp.prior.sample = latents
    trainer.fit()


if __name__ == "__main__":
    main()
