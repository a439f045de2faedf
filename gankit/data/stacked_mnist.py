"""Stacked MNIST: three MNIST digits drawn independently as the three channels of one image, 1,000 modes.

Protocol (Metz et al. 2017, "Unrolled GANs"; Srivastava et al. 2017, "VEEGAN"; Lin et al. 2018, "PacGAN"), as
coded in PacGAN's Table 2 experiment, fjxmlzn/PacGAN ``stacked_MNIST_experiments/VEEGAN_experiment``
(``config.py``: ``num_training_sample: 128000``, ``input_height: 28``; ``model.py``, ``load_mnist``): the 60,000
training and 10,000 test digits of MNIST are pooled (70,000 images), 128,000 triples of pool indices are drawn
uniformly with replacement, and stacked sample i is the 3x28x28 image whose channel c is digit ``index[i, c]``.
Its label, the mode, is ``100 * d0 + 10 * d1 + d2`` with d_c the MNIST label of channel c, so there are 1,000
classes. (PacGAN's Table 3 experiment, after Unrolled GAN, instead draws fresh triples of training digits for
every batch; with 128,000 fixed samples out of 70,000^3 possible ones the difference is small.)

Memory: only the digit pool (70,000 x 28 x 28 uint8, 55 MB) and the index table (128,000 x 3) are held, on the
training device; a batch is gathered from them there (``pool[index[rows]]``), never materialised as a whole
(it would be 301 MB). The data set is fixed by ``seed`` (a CPU generator), independent of the training seed.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from torch import Tensor

from gankit.data.base import Batch, count_classes, to_unit_range
from gankit.data.images import MNIST_CLASSES, load_idx_dataset, resize_images
from gankit.errors import GankitError
from gankit.registry import AT_LEAST_ONE, DATASETS

N_MODES = 1000
PACGAN_N = 128_000  # fjxmlzn/PacGAN stacked_MNIST_experiments/VEEGAN_experiment/config.py: num_training_sample
MODE_NAMES = [f"{m:03d}" for m in range(N_MODES)]  # mode 42 is "042": digits 0, 4, 2 in channels R, G, B


def mode_of(digits: Tensor) -> Tensor:
    """Digit triples [..., 3] (channel order) -> mode indices 100 * d0 + 10 * d1 + d2."""
    d = digits.long()
    return d[..., 0] * 100 + d[..., 1] * 10 + d[..., 2]


class StackedImages:
    """The stacked images as an indexable uint8 tensor view: ``images[rows]`` -> [len(rows), 3, H, W], gathered
    from the digit pool on its device (what ``data.x[ids]`` means for in-memory data)."""

    def __init__(self, pool: Tensor, index: Tensor) -> None:
        self.pool, self.index = pool, index  # pool: uint8 [M, H, W]; index: long [N, 3]

    @property
    def device(self) -> torch.device:
        return self.pool.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pool.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.index.shape[0], 3, *self.pool.shape[1:])

    def __len__(self) -> int:
        return self.index.shape[0]

    def __getitem__(self, rows: Any) -> Tensor:
        return self.pool[self.index[rows]]


class StackedMNISTData:
    """Stacked MNIST with the interface of ``InMemoryData`` that the engine and the metrics use (``sample``,
    ``real_batch``, ``shape``, ``kind``, ``info``, ``labels``, ``n_classes``, ``to``, ``len``, and ``x`` as an
    indexable view). ``digit_labels`` [N, 3] holds each channel's MNIST label."""

    kind = "image"
    hflip = False
    dequantize = False

    def __init__(self, pool: Tensor, pool_labels: Tensor, index: Tensor, info: dict[str, Any]) -> None:
        self.pool, self.pool_labels, self.index = pool, pool_labels, index
        self.info = info
        self.digit_labels = pool_labels[index]
        self.labels = mode_of(self.digit_labels)

    @property
    def x(self) -> StackedImages:
        return StackedImages(self.pool, self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (3, *self.pool.shape[1:])

    def __len__(self) -> int:
        return self.index.shape[0]

    @property
    def n_classes(self) -> int:
        return count_classes(self.info, self.labels)

    def to(self, device: torch.device | str) -> "StackedMNISTData":
        return StackedMNISTData(self.pool.to(device), self.pool_labels.to(device), self.index.to(device), self.info)

    def sample(self, batch_size: int) -> Batch:
        """batch_size stacked images drawn with replacement (in [-1, 1]) and their modes, on the data's device."""
        rows = torch.randint(len(self), (batch_size,), device=self.pool.device)
        return Batch(to_unit_range(self.pool[self.index[rows]]), self.labels[rows])

    def real_batch(self, n: int) -> Tensor:
        """The first n stacked images in the model's range, for figures and metrics."""
        return to_unit_range(self.pool[self.index[:n]])

    def __repr__(self) -> str:
        return f"StackedMNISTData({len(self)} images of {self.shape} from {len(self.pool)} digits)"


def stack_indices(pool_size: int, n: int, seed: int) -> Tensor:
    """n triples of pool indices, uniform with replacement, fixed by ``seed`` (long [n, 3], CPU)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(pool_size, (n, 3), generator=gen)


Split = Literal["all", "train", "test"]


@DATASETS.register("stacked_mnist", "Stacked MNIST: 3 independent MNIST digits as the RGB channels, 1,000 modes "
                                    "(label 100*d0 + 10*d1 + d2); PacGAN protocol: 128,000 samples, 3x28x28")
def stacked_mnist(*, n: Annotated[int, AT_LEAST_ONE] = PACGAN_N, split: Split = "all", seed: int = 0,
                  resolution: Literal[28, 32] = 28, limit: Annotated[int, AT_LEAST_ONE] | None = None,
                  root: str | None = None, download: bool = True) -> StackedMNISTData:
    """n: stacked samples (PacGAN: 128,000). split: the digit pool: all = MNIST train + test, 70,000 digits
    (PacGAN's Table 2 code), train (60,000) or test (10,000). seed: fixes the triples (not the training seed).
    resolution: 28 (the protocol) or 32 (each digit resized once, antialiased bilinear, for 32-pixel models; the
    stacked_modes metric resizes back to 28 for the classifier). limit: read at most this many digits of each
    MNIST split (tests)."""
    parts = ["train", "test"] if split == "all" else [split]
    xs, ys = [], []
    for part in parts:
        x, y, _ = load_idx_dataset("stacked_mnist", "MNIST", MNIST_CLASSES, split=part, root=root,
                                   download=download, limit=limit)
        xs.append(x)
        ys.append(y)
    pool, pool_labels = torch.cat(xs), torch.cat(ys)
    if len(pool) == 0:
        raise GankitError("stacked_mnist: the MNIST files hold no images")
    pool = resize_images(pool, resolution)[:, 0].contiguous()  # [M, H, W]; a no-op at 28
    index = stack_indices(len(pool), n, seed)
    info = {"classes": MODE_NAMES, "pool": f"mnist/{split} ({len(pool)} digits)", "seed": seed}
    return StackedMNISTData(pool, pool_labels, index, info)
