"""The collectives a data-parallel GAN step needs, each a no-op in a one-process run.

gankit averages gradients itself, once per optimiser step, instead of wrapping networks in
DistributedDataParallel. DDP's reducer fires from autograd hooks during one backward per forward; a GAN step
breaks that model several ways: D runs on real and generated batches separately (batch norm), a penalty
re-runs D and differentiates through autograd.grad (double backward), G's step backpropagates through D with
D's weights frozen (D's gradients must not be reduced then), and InfoGAN's Q head or VEEGAN's encoder are unused
in one of the two phases. Reducing after ``loss.backward()`` sees each parameter's final gradient, whatever
produced it (StyleGAN2-ADA reduces its gradients the same way).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gankit.distributed.process import is_main, local_rank, world_size
from gankit.errors import GankitError

T = TypeVar("T")


def _groups(tensors: Iterable[Tensor]) -> list[list[Tensor]]:
    """Tensors grouped by (device, dtype): each group is flattened into one buffer for one collective."""
    groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    return list(groups.values())


def _all_reduce_mean_(tensors: list[Tensor]) -> None:
    """Replace each tensor by its mean over the ranks: one all-reduce per (device, dtype) group."""
    n = world_size()
    for group in _groups(tensors):
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)  # SUM: gloo has no AVG
        flat.div_(n)
        for t, part in zip(group, flat.split([t.numel() for t in group])):
            t.copy_(part.view_as(t))


_seen_patterns: set[tuple[bool, ...]] = set()


def reduce_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the ranks: each rank's gradient is the mean over its share of the
    global batch, so the average is the global batch's mean gradient, as one process would compute it.

    Only parameters that have a gradient take part; the others (a head unused in this phase) keep none, so their
    optimiser skips them as in one process. Which parameters have one is decided by the config, not the data, so
    it is the same on every rank; that is checked collectively the first time each pattern appears.
    """
    if world_size() == 1:
        return
    params = [p for p in params if p.requires_grad]
    pattern = tuple(p.grad is not None for p in params)
    if pattern not in _seen_patterns:
        check_same(pattern, "the set of parameters with a gradient in this phase")
        _seen_patterns.add(pattern)
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        _all_reduce_mean_(grads)


def average_buffers(modules: Iterable[nn.Module]) -> None:
    """Average the floating-point buffers (batch-norm running statistics, spectral-norm vectors) over the ranks.

    Without sync_batch_norm, each rank's batch norm tracks the statistics of its own share of the batch; the
    average is what the snapshot, the evaluation and the checkpoint use, so that every rank holds the same model.
    Training-mode forwards use the batch's statistics, so this never changes a training step."""
    if world_size() == 1:
        return
    buffers = [b for m in modules for b in m.buffers() if b.is_floating_point()]
    if buffers:
        with torch.no_grad():
            _all_reduce_mean_(buffers)


def broadcast_state(modules: Iterable[nn.Module]) -> None:
    """Give every rank rank 0's parameters and buffers (as DDP does when it wraps a module)."""
    if world_size() == 1:
        return
    tensors = [t for m in modules for t in [*m.parameters(), *m.buffers()]]
    with torch.no_grad():
        for group in _groups(tensors):
            flat = torch.cat([t.reshape(-1) for t in group])
            dist.broadcast(flat, src=0)
            for t, part in zip(group, flat.split([t.numel() for t in group])):
                t.copy_(part.view_as(t))


def all_mean(t: Tensor) -> Tensor:
    """The mean of ``t`` over the ranks (a new tensor; ``t`` itself in one process)."""
    if world_size() == 1:
        return t
    out = t.detach().clone()
    dist.all_reduce(out)
    return out.div_(world_size())


def gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_from_main(obj: T | None) -> T:
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj  # type: ignore[return-value]
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class SharedError(GankitError):
    """An error every rank raises together (rank 0 reports it; the others stop quietly)."""


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` computed by rank 0 alone and handed to every rank; ``fn`` must not use collectives. A user error in
    ``fn`` stops every rank with rank 0's message."""
    if world_size() == 1:
        return fn()
    outcome: tuple[str, Any] | None = None
    if is_main():
        try:
            outcome = ("ok", fn())
        except GankitError as exc:
            outcome = ("error", str(exc))
    outcome = broadcast_from_main(outcome)
    assert outcome is not None
    if outcome[0] == "error":
        raise SharedError(outcome[1])
    return outcome[1]


def check_same(value: Any, what: str) -> None:
    """Stop every rank if ``value`` differs between ranks (ranks launched with different configs, say)."""
    values = gather_objects(value)
    for r, v in enumerate(values):
        if v != values[0]:
            raise SharedError(f"{what} differs between rank 0 and rank {r}; every rank must run the same command")


@contextmanager
def machine_main_first() -> Iterator[None]:
    """The block runs on each machine's first rank, then on the others: a download or a cache file is written
    once per machine, and the others read it (every rank passes one barrier). If the block fails on the first rank,
    the others never run it; they stop when that rank exits."""
    if world_size() == 1:
        yield
        return
    if local_rank() != 0:
        dist.barrier()
    yield
    if local_rank() == 0:
        dist.barrier()
