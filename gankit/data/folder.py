"""Folders of image files (``image_folder``, ``celeba``): decoded once, in threads, into one uint8 tensor.

Each image is converted to L or RGB, its shorter side scaled to ``resolution`` (antialiased bicubic), and the
centre cropped square. The decoded tensor is cached in DATA_ROOT/cache/, keyed by the folder, every file's
name, size and mtime, and the decoding parameters, so a second run starts at once. Unreadable or truncated files
are skipped and counted in one warning. A folder whose images would exceed ``max_memory_mb`` streams through a
DataLoader instead (gankit.data.stream).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from gankit.data.base import InMemoryData
from gankit.data.images import (MB, Limit, MemoryMB, Resolution, Workers, check_channels, data_root,
                                try_download)
from gankit.data.stream import StreamingImageData, default_workers
from gankit.errors import GankitError
from gankit.io import atomic_path
from gankit.registry import AT_LEAST_ONE, DATASETS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CACHE_VERSION = 1
Crop = Annotated[int, AT_LEAST_ONE] | None
ORIENTATION = 0x0112  # the EXIF tag
T = Image.Transpose
TRANSPOSE = {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270,
             7: T.TRANSVERSE, 8: T.ROTATE_90}
FileEntry = tuple[str, int, int]  # path relative to the folder (with /), size, mtime in ns


def list_images(folder: Path, what: str = "image folder") -> list[FileEntry]:
    """Every image file under ``folder`` (recursively, hidden files and folders skipped), sorted by path.

    Raises GankitError for a missing path, a file, an empty folder or a folder without images."""
    if not folder.exists():
        raise GankitError(f"{what} {folder} does not exist")
    if not folder.is_dir():
        raise GankitError(f"{what} {folder} is not a folder")
    found: list[FileEntry] = []
    others: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                others.append(os.path.relpath(full, folder))
                continue
            try:
                st = os.stat(full)
            except OSError:
                continue
            found.append((Path(os.path.relpath(full, folder)).as_posix(), st.st_size, st.st_mtime_ns))
    if not found:
        if not others:
            raise GankitError(f"{what} {folder} is empty")
        raise GankitError(f"{what} {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); found {len(others)} "
                          f"other file(s), e.g. {sorted(others)[0]}")
    found.sort()
    return found


def decode_image_file(path: str, resolution: int, channels: int, crop: int | None = None) -> np.ndarray:
    """One image file -> uint8 CHW array of ``channels`` x ``resolution`` x ``resolution``.

    ``crop``: first cut a centre square of this many pixels (of the original image; CelebA's faces: 108 or 140).
    Then scale the shorter side to ``resolution`` and cut the centre square."""
    mode = "L" if channels == 1 else "RGB"
    with Image.open(path) as img:
        w, h = img.size
        side = min(crop or min(w, h), w, h)
        if img.format == "JPEG":  # decode at a reduced scale (DCT scaling) when that still leaves enough pixels
            factor = resolution / side
            img.draft(mode, (math.ceil(w * factor), math.ceil(h * factor)))
        orientation = img.getexif().get(ORIENTATION, 1)
        if img.mode == "P":
            img = img.convert("RGBA")  # palette transparency, without Pillow's warning
        elif img.mode.startswith("I") or img.mode == "F":  # 16/32-bit grayscale: Pillow's convert would clip
            a = np.asarray(img, dtype=np.float64)
            img = Image.fromarray((a / 257 if a.max() > 255 else a).round().clip(0, 255).astype(np.uint8), "L")
        img = img.convert(mode)
        if orientation in TRANSPOSE:  # camera rotation (EXIF), as image viewers show it
            img = img.transpose(TRANSPOSE[orientation])
        if crop:
            scale = min(img.size) / min(w, h)  # the draft scale
            c = min(crop * scale, *img.size)
            left, top = (img.size[0] - c) / 2, (img.size[1] - c) / 2
            img = img.crop((round(left), round(top), round(left + c), round(top + c)))
        cw, ch = img.size
        s = resolution / min(cw, ch)
        size = (max(resolution, round(cw * s)), max(resolution, round(ch * s)))
        if size != img.size:
            img = img.resize(size, Image.Resampling.BICUBIC)
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        img = img.crop((left, top, left + resolution, top + resolution))
        arr = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))  # writable, CHW


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:160]


def decode_all(paths: list[str], resolution: int, channels: int, crop: int | None, threads: int
               ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Decode ``paths`` in a thread pool (Pillow releases the GIL while decoding and resizing).

    Returns the images (N x C x H x W uint8), a mask of the ones that decoded, and (path, error) of the others."""
    out = np.zeros((len(paths), channels, resolution, resolution), dtype=np.uint8)
    ok = np.ones(len(paths), dtype=bool)
    errors: list[tuple[str, str]] = []

    def work(start: int) -> None:
        for i in range(start, min(start + 256, len(paths))):
            try:
                out[i] = decode_image_file(paths[i], resolution, channels, crop)
            except Exception as exc:  # unreadable, truncated, not an image: skipped and counted
                ok[i] = False
                errors.append((paths[i], _short(exc)))

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(work, range(0, len(paths), 256)))
    return out, ok, errors


def warn_skipped(folder: Path, count: int, example: str) -> None:
    if count:
        warnings.warn(f"skipped {count} unreadable image file(s) in {folder} (e.g. {example})", stacklevel=2)


class FileItems(Dataset):
    """Image files decoded one at a time (the streaming path). An unreadable file is replaced by the next
    readable one, and counted in one warning per worker process."""

    def __init__(self, paths: list[str], resolution: int, channels: int, crop: int | None) -> None:
        self.paths, self.resolution, self.channels, self.crop = paths, resolution, channels, crop
        self.failed = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        for k in range(min(len(self.paths), 100)):
            path = self.paths[(i + k) % len(self.paths)]
            try:
                return torch.from_numpy(decode_image_file(path, self.resolution, self.channels, self.crop))
            except Exception as exc:
                self.failed += 1
                if self.failed == 1:
                    print(f"warning: skipping unreadable image file {path} ({_short(exc)}); later ones are "
                          "skipped silently", file=sys.stderr)
        raise GankitError(f"100 image files in a row are unreadable, from {self.paths[i]}")


def _readable_header(path: str) -> str | None:
    try:
        with Image.open(path):
            return None
    except Exception as exc:
        return _short(exc)


def load_images(folder: Path, files: list[FileEntry], *, resolution: int, channels: int, crop: int | None,
                labels: bool, limit: int | None, hflip: bool, max_memory_mb: float, workers: int | None,
                cache: bool, root: str | None, what: str) -> InMemoryData | StreamingImageData:
    """The first ``limit`` images of ``files`` in ``folder``, in memory (decoded once, cached on disk) or
    streamed."""
    check_channels(channels)
    threads = workers or default_workers()
    classes: list[str] | None = None
    label_of: list[int] | None = None
    if labels:
        top = sum("/" not in f[0] for f in files)
        files = [f for f in files if "/" in f[0]]
        if not files:
            raise GankitError(f"{what} {folder} has no images in subfolders; labels: true takes the class of "
                              "each image from its first-level subfolder name (FOLDER/CLASS/.../IMAGE)")
        if top:
            warnings.warn(f"ignored {top} image(s) directly in {folder}, outside the class subfolders", stacklevel=3)
        classes = sorted({f[0].split("/", 1)[0] for f in files})  # all of them, whatever the limit
    if limit is not None:
        files = files[:limit]
    if classes is not None:
        index = {c: i for i, c in enumerate(classes)}
        label_of = [index[f[0].split("/", 1)[0]] for f in files]
    paths = [str(folder / f[0]) for f in files]
    info: dict[str, Any] = {"classes": classes} if classes is not None else {}

    if len(files) * channels * resolution * resolution > max_memory_mb * MB:
        with ThreadPoolExecutor(threads) as pool:
            bad = [(p, e) for p, e in zip(paths, pool.map(_readable_header, paths)) if e is not None]
        if bad:
            warn_skipped(folder, len(bad), f"{bad[0][0]}: {bad[0][1]}")
            unreadable = {b[0] for b in bad}
            keep = [i for i, p in enumerate(paths) if p not in unreadable]
            if not keep:
                raise GankitError(f"{what} {folder}: none of its {len(paths)} image files can be read")
            paths = [paths[i] for i in keep]
            label_of = [label_of[i] for i in keep] if label_of is not None else None
        y = torch.tensor(label_of, dtype=torch.int64) if label_of is not None else None
        return StreamingImageData(FileItems(paths, resolution, channels, crop), (channels, resolution, resolution),
                                  info, y, hflip, workers)

    key = hashlib.sha256(json.dumps([CACHE_VERSION, str(folder.resolve()), resolution, channels, crop, labels,
                                     files]).encode()).hexdigest()[:24]
    cache_file = data_root(root) / "cache" / f"{folder.name or 'images'}-{key}.pt"
    if cache and cache_file.is_file():
        try:
            saved = torch.load(cache_file, weights_only=True)
            x, y, skipped = saved["x"], saved["labels"], saved["skipped"]
        except Exception:  # unreadable cache: decode again and rewrite it
            pass
        else:
            warn_skipped(folder, skipped[0], skipped[1])
            return InMemoryData(x, "image", info, y, hflip)

    if len(files) >= 20_000:
        print(f"gankit: decoding {len(files):,} images from {folder} (once: the result is cached)", file=sys.stderr)
    out, ok, errors = decode_all(paths, resolution, channels, crop, threads)
    if not ok.any():
        raise GankitError(f"{what} {folder}: none of its {len(paths)} image files can be read "
                          f"(e.g. {errors[0][0]}: {errors[0][1]})")
    errors.sort()
    skipped = [len(errors), f"{errors[0][0]}: {errors[0][1]}" if errors else ""]
    warn_skipped(folder, skipped[0], skipped[1])
    x = torch.from_numpy(out if ok.all() else out[ok])
    y = torch.tensor(label_of, dtype=torch.int64)[torch.from_numpy(ok)] if label_of is not None else None
    if cache:
        try:
            with atomic_path(cache_file) as tmp:
                torch.save({"x": x, "labels": y, "skipped": skipped}, tmp)
        except OSError as exc:  # a read-only data root: work without the cache
            warnings.warn(f"cannot write the decoded-image cache {cache_file}: {exc}", stacklevel=2)
    return InMemoryData(x, "image", info, y, hflip)


@DATASETS.register("image_folder", "any folder of PNG/JPEG/WebP images, recursively; labels from subfolders")
def image_folder(*, path: str, resolution: Resolution = 64, channels: Literal[1, 3] = 3, labels: bool = False,
                 crop: Crop = None, hflip: bool = False, limit: Limit = None, max_memory_mb: MemoryMB = 4096.0,
                 workers: Workers = None, cache: bool = True, root: str | None = None
                 ) -> InMemoryData | StreamingImageData:
    check_channels(channels)
    folder = Path(path).expanduser()
    files = list_images(folder)
    return load_images(folder, files, resolution=resolution, channels=channels, crop=crop, labels=labels,
                       limit=limit, hflip=hflip, max_memory_mb=max_memory_mb, workers=workers, cache=cache, root=root,
                       what="image folder")


CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}


def _partition(folder: Path, split: str) -> set[str]:
    candidates = [folder.parent / "list_eval_partition.txt", folder / "list_eval_partition.txt"]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise GankitError(f"celeba split '{split}' needs {candidates[0]} (one line per image: NAME 0|1|2 for "
                          "train|valid|test); or use split: all")
    wanted = str(CELEBA_SPLITS[split])
    names = set()
    for line in found.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == wanted:
            names.add(parts[0])
    return names


@DATASETS.register("celeba", "CelebA aligned faces (178x218), resized and centre-cropped; default 3x64x64")
def celeba(*, split: Literal["all", "train", "valid", "test"] = "all", resolution: Resolution = 64,
           crop: Crop = None, channels: Literal[1, 3] = 3, hflip: bool = True, limit: Limit = None,
           path: str | None = None, root: str | None = None, download: bool = True,
           max_memory_mb: MemoryMB = 4096.0, workers: Workers = None, cache: bool = True
           ) -> InMemoryData | StreamingImageData:
    check_channels(channels)
    base = data_root(root)
    if path:
        folder = Path(path).expanduser()
    else:
        folder = base / "celeba" / "img_align_celeba"
        if not folder.is_dir():
            if download:
                reason = try_download(lambda tvd: tvd.CelebA(str(base), split="all", target_type=[],
                                                             download=True))
            else:
                reason = "download is false"
            if not folder.is_dir():
                raise GankitError(f"celeba is not in {folder} and {reason}; to use it offline, unzip "
                                  "img_align_celeba.zip (from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html) so "
                                  f"that the images are {folder}/000001.jpg ... (with list_eval_partition.txt in "
                                  f"{folder.parent}/ for split train/valid/test), or set data.path to a folder "
                                  "of the images")
    files = list_images(folder, "celeba folder")
    if split != "all":
        names = _partition(folder, split)
        files = [f for f in files if f[0].rsplit("/", 1)[-1] in names]
        if not files:
            raise GankitError(f"celeba split '{split}': none of the images in {folder} is listed for it in "
                              "list_eval_partition.txt")
    return load_images(folder, files, resolution=resolution, channels=channels, crop=crop, labels=False,
                       limit=limit, hflip=hflip, max_memory_mb=max_memory_mb, workers=workers, cache=cache, root=root,
                       what="celeba folder")
