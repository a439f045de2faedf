"""MNIST, Fashion-MNIST and CIFAR-10, downloaded by torchvision on first use into the data root.

The files are read here, not through torchvision's classes (those check the MD5 of every file and need MNIST
uncompressed); torchvision only downloads. A missing data set that cannot be downloaded (no network, no
torchvision, ``download: false``) is a one-line GankitError naming the files to place and where.

Images are decoded once into one uint8 NCHW tensor (see gankit.data.base); when that tensor would exceed
``max_memory_mb`` the data streams through a DataLoader instead (gankit.data.stream).
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from gankit.data.base import InMemoryData
from gankit.data.stream import StreamingImageData
from gankit.errors import GankitError
from gankit.registry import AT_LEAST_ONE, DATASETS, NON_NEGATIVE, POSITIVE

Resolution = Annotated[int, AT_LEAST_ONE]
Limit = Annotated[int, AT_LEAST_ONE] | None
MemoryMB = Annotated[float, POSITIVE]
Workers = Annotated[int, NON_NEGATIVE] | None
MB = 2**20

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def data_root(root: str | None = None) -> Path:
    """Where data sets are downloaded and decoded caches kept: ``root``, else $GANKIT_DATA, else
    $XDG_CACHE_HOME/gankit/data (~/.cache/gankit/data)."""
    if root:
        return Path(root).expanduser()
    if os.environ.get("GANKIT_DATA"):
        return Path(os.environ["GANKIT_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "gankit" / "data"


def check_channels(channels: Any, allow_none: bool = False) -> None:
    if not (channels in (1, 3) or (allow_none and channels is None)):
        raise GankitError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


def try_download(fetch: Callable[[Any], Any]) -> str | None:
    """Run ``fetch(torchvision.datasets)``; None on success, else why it failed (one line, no traceback)."""
    try:
        import torchvision.datasets as tvd
    except ImportError:
        return "torchvision is not installed, so it cannot be downloaded (pip install torchvision)"
    try:
        fetch(tvd)
    except Exception as exc:  # network errors come as URLError, OSError, RuntimeError, ...
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [""]
        text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"  # torchvision: the cause comes last
        return f"the download failed ({type(exc).__name__}: {text[:240]})"
    return None


# --- resizing and channels of whole uint8 tensors ------------------------------------------------------------

def resize_images(x: Tensor, resolution: int, chunk: int = 2048) -> Tensor:
    """uint8 NCHW -> uint8 N x C x res x res: scale the shorter side to ``resolution`` (antialiased bilinear),
    then crop the centre. Returns ``x`` itself when it already has that size."""
    h, w = x.shape[-2:]
    if h == w == resolution:
        return x
    s = resolution / min(h, w)
    size = (max(resolution, round(h * s)), max(resolution, round(w * s)))
    top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    out = torch.empty(x.shape[0], x.shape[1], resolution, resolution, dtype=torch.uint8)
    for i in range(0, x.shape[0], chunk):
        y = F.interpolate(x[i:i + chunk].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        out[i:i + chunk] = y[..., top:top + resolution, left:left + resolution].round_().clamp_(0, 255)
    return out


def convert_channels(x: Tensor, channels: int) -> Tensor:
    """uint8 NCHW with 1 or 3 channels -> ``channels`` (grayscale repeated, or RGB -> luma as PIL's "L")."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        r, g, b = x.int().unbind(1)
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8).unsqueeze(1)
    raise GankitError(f"cannot convert {c}-channel images to {channels} channels")


class TensorItems(Dataset):
    """Native-size images in a uint8 tensor, resized one at a time (the streaming path for native data sets)."""

    def __init__(self, x: Tensor, resolution: int, channels: int) -> None:
        self.x, self.resolution, self.channels = x, resolution, channels

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return convert_channels(resize_images(self.x[i:i + 1], self.resolution), self.channels)[0]


def native_images(x: Tensor, labels: Tensor | None, classes: list[str] | None, *, resolution: int,
                  channels: int | None, hflip: bool, max_memory_mb: float, workers: int | None
                  ) -> InMemoryData | StreamingImageData:
    """Resize/convert native uint8 NCHW images in memory, or stream them when the result is too large."""
    channels = channels or x.shape[1]
    info = {"classes": classes} if classes is not None else {}
    if len(x) * channels * resolution * resolution > max_memory_mb * MB:
        return StreamingImageData(TensorItems(x, resolution, channels), (channels, resolution, resolution), info,
                                  labels, hflip, workers)
    if channels < x.shape[1]:
        x = resize_images(convert_channels(x, channels), resolution)
    else:
        x = convert_channels(resize_images(x, resolution), channels)
    return InMemoryData(x.contiguous(), "image", info, labels, hflip)


# --- MNIST and Fashion-MNIST: IDX files ----------------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped when it ends in .gz) as an array of its shape."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise GankitError(f"cannot read {path}: {exc}") from None
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or not 1 <= data[3] <= 4:
        raise GankitError(f"{path} is not an IDX file of unsigned bytes (bad header); replace it with the original")
    nd = data[3]
    if len(data) < 4 + 4 * nd:
        raise GankitError(f"{path} is truncated; replace it with the original")
    dims = struct.unpack(f">{nd}I", data[4:4 + 4 * nd])
    count = int(np.prod(dims))
    if len(data) - 4 - 4 * nd != count:
        raise GankitError(f"{path} holds {len(data) - 4 - 4 * nd} bytes of data, its header says {count}; "
                          "replace it with the original")
    return np.frombuffer(data, np.uint8, count, offset=4 + 4 * nd).reshape(dims)


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_idx_dataset(label: str, tv_class: str, classes: list[str], *, split: str, root: str | None,
                     download: bool, limit: int | None) -> tuple[Tensor, Tensor, list[str]]:
    base = data_root(root)
    raw = base / tv_class / "raw"
    prefix = "train" if split == "train" else "t10k"
    names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    files = [_find(raw, n) for n in names]
    if None in files:
        if download:
            reason = try_download(lambda tvd: getattr(tvd, tv_class)(str(base), train=split == "train",
                                                                      download=True))
        else:
            reason = "download is false"
        files = [_find(raw, n) for n in names]
        if None in files:
            raise GankitError(f"{label} ({split} split) is not in {raw} and {reason}; to use it offline, place "
                              f"the original files {' and '.join(n + '(.gz)' for n in names)} (gzipped or not) "
                              f"in {raw}/, or set data.root to a folder holding {tv_class}/raw/")
    images, targets = read_idx(files[0]), read_idx(files[1])  # type: ignore[arg-type]
    if images.ndim != 3 or targets.ndim != 1 or len(images) != len(targets):
        raise GankitError(f"{files[0]} and {files[1]} do not match: images {images.shape}, labels {targets.shape}")
    n = len(images) if limit is None else min(limit, len(images))
    x = torch.from_numpy(images[:n].copy()).unsqueeze(1)
    y = torch.from_numpy(targets[:n].astype(np.int64))
    return x, y, classes


Split = Literal["train", "test"]


@DATASETS.register("mnist", "MNIST digits, 60,000 train / 10,000 test, 1x28x28 (downloaded by torchvision)")
def mnist(*, split: Split = "train", resolution: Resolution = 28, channels: Literal[1, 3] | None = None,
          hflip: bool = False, limit: Limit = None, root: str | None = None, download: bool = True,
          max_memory_mb: MemoryMB = 4096.0, workers: Workers = None) -> InMemoryData | StreamingImageData:
    check_channels(channels, allow_none=True)
    x, y, classes = load_idx_dataset("mnist", "MNIST", MNIST_CLASSES, split=split, root=root, download=download,
                                     limit=limit)
    return native_images(x, y, classes, resolution=resolution, channels=channels, hflip=hflip,
                         max_memory_mb=max_memory_mb, workers=workers)


@DATASETS.register("fashion_mnist", "Fashion-MNIST, 60,000 train / 10,000 test, 1x28x28 (downloaded by torchvision)")
def fashion_mnist(*, split: Split = "train", resolution: Resolution = 28, channels: Literal[1, 3] | None = None,
                  hflip: bool = False, limit: Limit = None, root: str | None = None, download: bool = True,
                  max_memory_mb: MemoryMB = 4096.0, workers: Workers = None) -> InMemoryData | StreamingImageData:
    check_channels(channels, allow_none=True)
    x, y, classes = load_idx_dataset("fashion_mnist", "FashionMNIST", FASHION_CLASSES, split=split, root=root,
                                     download=download, limit=limit)
    return native_images(x, y, classes, resolution=resolution, channels=channels, hflip=hflip,
                         max_memory_mb=max_memory_mb, workers=workers)


# --- CIFAR-10: the python pickle batches ---------------------------------------------------------------------

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = ["test_batch"]
CIFAR_META = "batches.meta"


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
    except Exception as exc:
        raise GankitError(f"cannot read {path} as a CIFAR-10 python batch ({type(exc).__name__}: {exc}); "
                          "replace it with the original") from None
    if not isinstance(entry, dict):
        raise GankitError(f"{path} is not a CIFAR-10 python batch")
    return entry


def load_cifar10(*, split: str, root: str | None, download: bool, limit: int | None
                 ) -> tuple[Tensor, Tensor, list[str]]:
    base = data_root(root)
    folder = base / CIFAR_FOLDER
    names = (CIFAR_TRAIN if split == "train" else CIFAR_TEST) + [CIFAR_META]

    def complete() -> bool:
        return all((folder / n).is_file() for n in names)

    archive = base / CIFAR_ARCHIVE
    if not complete() and archive.is_file():  # placed by hand, not yet extracted
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(base, filter="data")
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise GankitError(f"cannot extract {archive}: {exc}; replace it with the original") from None
    if not complete():
        if download:
            reason = try_download(lambda tvd: tvd.CIFAR10(str(base), train=split == "train", download=True))
        else:
            reason = "download is false"
        if not complete():
            missing = [n for n in names if not (folder / n).is_file()]
            raise GankitError(f"cifar10 ({split} split) is not in {folder} (missing {', '.join(missing)}) and "
                              f"{reason}; to use it offline, place {CIFAR_ARCHIVE} (the python version, from "
                              f"https://www.cs.toronto.edu/~kriz/cifar.html) in {base}/ or extract it so that "
                              f"{folder}/ holds {', '.join(names)}, or set data.root")
    meta = _unpickle(folder / CIFAR_META)
    classes = [str(c) for c in meta.get("label_names", [])]
    xs, ys, have = [], [], 0
    for name in names[:-1]:
        if limit is not None and have >= limit:
            break
        entry = _unpickle(folder / name)
        try:
            data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
        except (KeyError, ValueError, TypeError) as exc:
            raise GankitError(f"{folder / name} is not a CIFAR-10 python batch ({exc})") from None
        if len(labels) != len(data):
            raise GankitError(f"{folder / name} holds {len(data)} images but {len(labels)} labels")
        xs.append(data)
        ys.append(labels)
        have += len(data)
    x = torch.from_numpy(np.concatenate(xs)[:limit].copy())
    y = torch.from_numpy(np.concatenate(ys)[:limit].copy())
    return x, y, classes


@DATASETS.register("cifar10", "CIFAR-10, 50,000 train / 10,000 test, 3x32x32 (downloaded by torchvision)")
def cifar10(*, split: Split = "train", resolution: Resolution = 32, channels: Literal[1, 3] | None = None,
            hflip: bool = True, limit: Limit = None, root: str | None = None, download: bool = True,
            max_memory_mb: MemoryMB = 4096.0, workers: Workers = None, dequantize: bool = False
            ) -> InMemoryData | StreamingImageData:
    """dequantize: feed x / 128 - 1 + U(0, 1/128) instead of x / 127.5 - 1 (the SNGAN authors' loader)."""
    check_channels(channels, allow_none=True)
    x, y, classes = load_cifar10(split=split, root=root, download=download, limit=limit)
    data = native_images(x, y, classes, resolution=resolution, channels=channels, hflip=hflip,
                         max_memory_mb=max_memory_mb, workers=workers)
    data.dequantize = dequantize
    return data


@DATASETS.register("noise_images", "uniform random uint8 images of any shape: for speed benchmarks and tests")
def noise_images(*, n: Annotated[int, AT_LEAST_ONE] = 10_000, channels: Literal[1, 3] = 3,
                 resolution: Resolution = 32, n_classes: Annotated[int, NON_NEGATIVE] = 0,
                 seed: int = 0) -> InMemoryData:
    """n_classes > 0 labels image i with class i mod n_classes (for conditional speed runs and tests)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, channels, resolution, resolution), generator=gen, dtype=torch.uint8)
    if n_classes:
        labels = torch.arange(n) % n_classes
        return InMemoryData(x, "image", {"classes": [str(c) for c in range(n_classes)]}, labels)
    return InMemoryData(x, "image", {"classes": None})
