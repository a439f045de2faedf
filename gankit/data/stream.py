"""Image data too large for memory, read through a torch DataLoader with worker processes.

``StreamingImageData`` has the interface of ``InMemoryData`` that the engine uses (``sample``, ``real_batch``,
``shape``, ``kind``, ``info``, ``labels``, ``hflip``, ``to``, ``len``): ``sample(n)`` returns a float batch in
[-1, 1] on the training device, drawn with replacement like the in-memory path. Decoding happens in the workers
(uint8 over the process boundary, a quarter of float32); the conversion to float and the flips run on the device.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from gankit.data.base import Batch, count_classes, flip_half, to_unit_range, to_unit_range_dequantized


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    processes = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)  # data-parallel ranks on this machine share its cores
    return max(1, min(4, cores // max(1, processes)))


class ForeverRandom(Sampler[int]):
    """Indices drawn uniformly with replacement, without end (from torch's global generator, so a seeded run
    draws the same indices)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[int]:
        while True:
            yield from torch.randint(self.n, (4096,)).tolist()


class WithIndex(Dataset):
    """Items paired with their index, so that a streamed batch can carry its labels."""

    def __init__(self, items: Dataset) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.items[i], i


class StreamingImageData:
    """Images decoded on the fly from ``items`` (a map-style Dataset whose items are uint8 CHW tensors)."""

    kind = "image"
    in_memory = False  # decoded per batch: a study cannot stack its seeds over it (compat.stack_blocker)

    def __init__(self, items: Dataset, shape: tuple[int, int, int], info: dict[str, Any] | None = None,
                 labels: Tensor | None = None, hflip: bool = False, workers: int | None = None) -> None:
        self.items = items
        self._shape = tuple(shape)
        self.info = dict(info or {})
        self.labels = labels
        self.hflip = hflip
        self.dequantize = False  # see InMemoryData
        self.workers = default_workers() if workers is None else workers
        self.device = torch.device("cpu")
        self._iter: Iterator[Tensor] | None = None
        self._loader: DataLoader | None = None
        self._batch = 0
        self._real: Tensor | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]

    @property
    def n_classes(self) -> int:
        return count_classes(self.info, self.labels)

    def to(self, device: torch.device | str) -> "StreamingImageData":
        self.device = torch.device(device)
        if self.labels is not None:
            self.labels = self.labels.to(self.device)
        self.close()  # pin_memory depends on the device
        return self

    def _start(self, batch_size: int) -> None:
        self.close()
        workers = self.workers
        self._loader = DataLoader(WithIndex(self.items), batch_size=batch_size, sampler=ForeverRandom(len(self)),
                                  num_workers=workers, pin_memory=self.device.type == "cuda",
                                  persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)
        self._iter = iter(self._loader)
        self._batch = batch_size

    def sample(self, batch_size: int) -> Batch:
        if self._iter is None or batch_size != self._batch:
            self._start(batch_size)
        assert self._iter is not None
        x, index = next(self._iter)
        convert = to_unit_range_dequantized if self.dequantize else to_unit_range
        batch = convert(x.to(self.device, non_blocking=True))
        if self.hflip:
            batch = flip_half(batch)
        labels = self.labels[index.to(self.device, non_blocking=True)] if self.labels is not None else None
        return Batch(batch, labels)

    def real_batch(self, n: int) -> Tensor:
        """The first n images in the model's range (decoded once, in threads, and kept on the host)."""
        n = min(n, len(self))
        if self._real is None or len(self._real) < n:
            with ThreadPoolExecutor(max(1, self.workers)) as pool:
                self._real = torch.stack(list(pool.map(self.items.__getitem__, range(n))))
        return to_unit_range(self._real[:n].to(self.device))

    def close(self) -> None:
        """Stop the worker processes (they restart on the next ``sample``)."""
        self._iter = None
        self._loader = None

    def __repr__(self) -> str:
        return f"StreamingImageData({len(self)} images of {self.shape}, workers={self.workers})"
