"""Loss bookkeeping without a host sync per step.

Losses are added into running sums on the device; every ``log_every`` G steps the sums are read in one
transfer and written to metrics.jsonl, TensorBoard and the progress bar. The first step whose loss was not
finite is also tracked on the device, so a diverged run can name it. In a data-parallel run every rank flushes
together: the sums are averaged over the ranks (the global batch's losses) and a non-finite loss on any rank
stops all of them; only rank 0 writes (``write``).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from gankit.distributed.process import world_size


def _step_of(line: str) -> float:
    """A metrics.jsonl line's step; a blank or torn line (a process killed mid-write) counts as after any step."""
    try:
        return json.loads(line).get("step", 0)
    except ValueError:
        return math.inf


class LossTracker:
    def __init__(self, metrics_path: Path, tensorboard_dir: Path | None, start_step: int, device: torch.device,
                 write: bool = True) -> None:
        self.metrics_path = metrics_path
        self.write = write
        if write:
            self._truncate_after(start_step)  # a resumed run rewrites what came after its checkpoint
        self.writer = None
        if tensorboard_dir is not None and write:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(tensorboard_dir), purge_step=start_step if start_step else None)
        self.device = device
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.last_step = start_step
        self.last_time = time.perf_counter()

    def _truncate_after(self, step: int) -> None:
        if not self.metrics_path.exists():
            return
        lines = self.metrics_path.read_text().splitlines()
        keep = [ln for ln in lines if _step_of(ln) <= step]
        if len(keep) != len(lines):
            self.metrics_path.write_text("".join(ln + "\n" for ln in keep))

    def add(self, terms: dict[str, Tensor]) -> None:
        for name, value in terms.items():
            value = value.detach().float()
            if name in self.sums:
                self.sums[name] += value
                self.counts[name] += 1
            else:
                self.sums[name] = value.clone()
                self.counts[name] = 1

    def check_finite(self, step: int, loss_sum: Tensor) -> None:
        """Remember the first G step whose losses were not finite (on the device: no sync)."""
        bad = ~torch.isfinite(loss_sum) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, torch.full_like(self.first_bad, step), self.first_bad)

    def flush(self, step: int, extra: dict[str, float] | None = None) -> dict[str, Any]:
        """Read the sums (one sync), write a record, reset. Returns the record; record['bad_step'] if diverged."""
        names = list(self.sums)
        local = torch.stack([self.sums[n] for n in names] + [self.first_bad.float()])
        values = combine_ranks(local).tolist()
        now = time.perf_counter()
        record: dict[str, Any] = {"step": step}
        for name, total in zip(names, values[:-1]):
            record[name] = total / self.counts[name]
        steps = step - self.last_step
        if steps > 0:
            record["steps_per_second"] = steps / max(now - self.last_time, 1e-9)
        record.update(extra or {})
        self.sums, self.counts = {}, {}
        self.last_step, self.last_time = step, now
        bad_step = int(values[-1])
        if bad_step >= 0:
            return {"bad_step": bad_step, **record}
        if not self.write:
            return record
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps({k: v for k, v in record.items() if not isinstance(v, float) or math.isfinite(v)}) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if key != "step":
                    self.writer.add_scalar(f"train/{key}", value, step)
        return record

    def log_eval(self, step: int, results: dict[str, Any], scalars: dict[str, float]) -> None:
        """One metrics.jsonl record {"step", "eval": results}; the scalars go to TensorBoard under eval/."""
        if not self.write:
            return
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps({"step": step, "eval": results}) + "\n")
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(f"eval/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def combine_ranks(local: Tensor) -> Tensor:
    """[loss sums..., first bad step] of every rank -> the mean sums and the earliest bad step (-1: none)."""
    if world_size() == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(parts, local)
    every = torch.stack(parts)
    bad = every[:, -1]
    bad = torch.where(bad >= 0, bad, torch.full_like(bad, float("inf"))).min()
    return torch.cat([every[:, :-1].mean(0), torch.where(torch.isinf(bad), -1.0, bad).reshape(1)])
