"""Image data sets: loaders on tiny fixtures in each format, the decode cache, streaming, bad input, offline."""
import gzip
import os
import pickle
import shutil
import struct
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gankit.data  # noqa: F401  (registers)
from gankit.data import folder as folder_mod
from gankit.data.base import InMemoryData
from gankit.data.folder import celeba, image_folder
from gankit.data.images import cifar10, data_root, fashion_mnist, mnist
from gankit.data.stream import StreamingImageData
from gankit.errors import ConfigError, GankitError
from gankit.registry import DATASETS

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def private_data_root(tmp_path, monkeypatch):
    """Nothing a test loads without an explicit root touches the user's data root."""
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "default-data-root"))


# --- fixtures in each data set's own format ------------------------------------------------------------------

def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    data = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def make_idx_set(root: Path, folder: str, n_train: int = 50, n_test: int = 20) -> dict[str, np.ndarray]:
    """Train files gzipped (as published), test files uncompressed (as torchvision leaves them)."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = {}
    for prefix, n, gz in (("train", n_train, True), ("t10k", n_test, False)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, gz)
        out[prefix] = images
    return out


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_cifar(root: Path, per_batch: int = 4) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as fh:
            pickle.dump({"batch_label": name, "data": data, "labels": labels, "filenames": []}, fh, protocol=2)
        if name != "test_batch":
            train.append(data)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_vis": 3072, "num_cases_per_batch": per_batch}, fh)
    return np.concatenate(train).reshape(-1, 3, 32, 32)


def face(seed: int, size=(178, 218)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def make_celeba(root: Path, n: int = 6) -> Path:
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        face(i).save(folder / f"{i:06d}.jpg", quality=90)
    (root / "celeba" / "list_eval_partition.txt").write_text(
        "".join(f"{i:06d}.jpg {0 if i <= 4 else 1 if i == 5 else 2}\n" for i in range(1, n + 1)))
    return folder


def make_folder(root: Path) -> Path:
    """cats/a.png (RGB), cats/deep/b.jpg, cats/c.webp, dogs/d.png (L), dogs/e.png (RGBA), dogs/f.png (palette),
    a notes file that is not an image, and a hidden file."""
    top = root / "imgs"
    (top / "cats" / "deep").mkdir(parents=True)
    (top / "dogs").mkdir()
    face(1, (40, 30)).save(top / "cats" / "a.png")
    face(2, (50, 50)).save(top / "cats" / "deep" / "b.jpg", quality=95)
    face(3, (64, 80)).save(top / "cats" / "c.webp", quality=90)
    Image.fromarray(np.full((20, 20), 200, np.uint8), "L").save(top / "dogs" / "d.png")
    Image.fromarray(np.full((32, 32, 4), 100, np.uint8), "RGBA").save(top / "dogs" / "e.png")
    face(6, (33, 33)).convert("P").save(top / "dogs" / "f.png")
    (top / "notes.txt").write_text("not an image")
    (top / ".hidden.png").write_bytes(b"junk")
    return top


# --- MNIST, Fashion-MNIST ------------------------------------------------------------------------------------

def test_mnist_reads_gzipped_and_plain_idx_files(tmp_path):
    arrays = make_idx_set(tmp_path, "MNIST")
    d = mnist(root=str(tmp_path), download=False)
    assert isinstance(d, InMemoryData) and d.kind == "image" and len(d) == 50 and d.shape == (1, 28, 28)
    assert d.x.dtype == torch.uint8 and torch.equal(d.x[:, 0], torch.from_numpy(arrays["train"]))
    assert d.labels.dtype == torch.int64 and d.labels.tolist() == [i % 10 for i in range(50)]
    assert d.info["classes"] == [str(i) for i in range(10)] and not d.hflip
    test = mnist(split="test", root=str(tmp_path), download=False)
    assert len(test) == 20 and torch.equal(test.x[:, 0], torch.from_numpy(arrays["t10k"]))
    batch = d.sample(16).x
    assert batch.shape == (16, 1, 28, 28) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1 and batch.min() < -0.9 and batch.max() > 0.9


def test_mnist_resolution_channels_and_limit(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    d = mnist(root=str(tmp_path), resolution=32, channels=3, limit=7)
    assert d.x.shape == (7, 3, 32, 32) and d.x.dtype == torch.uint8 and len(d.labels) == 7
    assert torch.equal(d.x[:, 0], d.x[:, 1]) and torch.equal(d.x[:, 0], d.x[:, 2])
    assert mnist(root=str(tmp_path), resolution=64).x.shape == (50, 1, 64, 64)
    assert mnist(root=str(tmp_path), resolution=14).sample(3).x.shape == (3, 1, 14, 14)


def test_mnist_via_registry_and_data_root_env(tmp_path, monkeypatch):
    make_idx_set(tmp_path, "MNIST")
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path))
    assert data_root() == tmp_path
    d = DATASETS.build({"name": "mnist", "limit": 5, "resolution": 32}, "data")
    assert d.x.shape == (5, 1, 32, 32)
    with pytest.raises(ConfigError, match="data.channels must be one of 1, 3"):
        DATASETS.build({"name": "mnist", "channels": 2}, "data")


def test_fashion_mnist(tmp_path):
    make_idx_set(tmp_path, "FashionMNIST", n_train=12)
    d = fashion_mnist(root=str(tmp_path), download=False)
    assert d.x.shape == (12, 1, 28, 28) and d.info["classes"][0] == "T-shirt/top" and len(d.info["classes"]) == 10


def test_corrupt_idx_file_is_a_user_error(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    (raw / "t10k-images-idx3-ubyte").write_bytes((raw / "t10k-images-idx3-ubyte").read_bytes()[:500])
    with pytest.raises(GankitError, match="t10k-images-idx3-ubyte holds .* header says"):
        mnist(split="test", root=str(tmp_path), download=False)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(GankitError, match="cannot read .*train-images-idx3-ubyte.gz"):
        mnist(root=str(tmp_path), download=False)


# --- CIFAR-10 ------------------------------------------------------------------------------------------------

def test_cifar10_python_batches(tmp_path):
    train = make_cifar(tmp_path)
    d = cifar10(root=str(tmp_path), download=False)
    assert d.x.shape == (20, 3, 32, 32) and d.x.dtype == torch.uint8 and d.hflip
    assert torch.equal(d.x, torch.from_numpy(train)) and d.info["classes"] == CIFAR_CLASSES
    assert d.labels.dtype == torch.int64 and len(d.labels) == 20 and 0 <= d.labels.min() <= d.labels.max() <= 9
    assert len(cifar10(split="test", root=str(tmp_path))) == 4
    assert torch.equal(cifar10(root=str(tmp_path), limit=6).x, d.x[:6])
    gray = cifar10(root=str(tmp_path), channels=1, limit=2)
    expected = np.array(Image.fromarray(train[0].transpose(1, 2, 0)).convert("L"))
    assert gray.x.shape == (2, 1, 32, 32) and torch.equal(gray.x[0, 0], torch.from_numpy(expected))
    big = cifar10(root=str(tmp_path), resolution=64, limit=3)
    assert big.x.shape == (3, 3, 64, 64) and big.sample(4).x.shape == (4, 3, 64, 64)


def test_cifar10_archive_placed_by_hand_is_extracted(tmp_path):
    import tarfile
    src = tmp_path / "src"
    make_cifar(src)
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    assert len(cifar10(root=str(root), download=False)) == 20


# --- offline: missing data and no network --------------------------------------------------------------------

@pytest.fixture
def no_network(monkeypatch):
    import torchvision.datasets.celeba
    import torchvision.datasets.utils

    def fail(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", fail)
    monkeypatch.setattr(torchvision.datasets.utils, "download_file_from_google_drive", fail)
    monkeypatch.setattr(torchvision.datasets.celeba, "download_file_from_google_drive", fail)
    monkeypatch.setattr(urllib.request, "urlopen", fail)


@pytest.mark.parametrize("factory, folder", [(mnist, "MNIST"), (fashion_mnist, "FashionMNIST")])
def test_offline_idx_error_names_the_files_and_folder(tmp_path, no_network, factory, folder):
    with pytest.raises(GankitError) as err:
        factory(root=str(tmp_path))
    msg = str(err.value)
    raw = tmp_path / folder / "raw"
    assert "\n" not in msg and "download failed" in msg and "name resolution" in msg
    assert f"{raw}/" in msg and "train-images-idx3-ubyte(.gz)" in msg and "train-labels-idx1-ubyte(.gz)" in msg
    with pytest.raises(GankitError, match="t10k-images-idx3-ubyte"):
        factory(split="test", root=str(tmp_path))


def test_offline_cifar_and_celeba_errors(tmp_path, no_network):
    with pytest.raises(GankitError) as err:
        cifar10(root=str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and "download failed" in msg and "cifar-10-python.tar.gz" in msg
    assert str(tmp_path / "cifar-10-batches-py") in msg and "data_batch_5" in msg and "batches.meta" in msg
    with pytest.raises(GankitError) as err:
        celeba(root=str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "celeba" / "img_align_celeba") + "/000001.jpg" in msg
    assert "img_align_celeba.zip" in msg and "data.path" in msg


def test_download_false_never_downloads(tmp_path, monkeypatch):
    import torchvision.datasets.utils

    def called(*args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", called)
    with pytest.raises(GankitError, match="download is false; to use it offline, place"):
        mnist(root=str(tmp_path), download=False)
    with pytest.raises(GankitError, match="download is false"):
        cifar10(root=str(tmp_path), download=False)


# --- folders: image_folder, celeba ---------------------------------------------------------------------------

@pytest.mark.parametrize("resolution", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_decodes_every_format_recursively(tmp_path, resolution, channels):
    top = make_folder(tmp_path)
    d = image_folder(path=str(top), resolution=resolution, channels=channels, root=str(tmp_path / "data"))
    assert isinstance(d, InMemoryData) and d.kind == "image" and d.labels is None and "classes" not in d.info
    assert d.x.shape == (6, channels, resolution, resolution) and d.x.dtype == torch.uint8
    assert d.sample(5).x.shape == (5, channels, resolution, resolution)
    gray = d.x[3]  # dogs/d.png: a flat 200 everywhere, in every channel
    assert int(gray.min()) == int(gray.max()) == 200


def test_image_folder_labels_from_first_level_subfolders(tmp_path):
    top = make_folder(tmp_path)
    face(9).save(top / "loose.png")
    with pytest.warns(UserWarning, match="ignored 1 image"):
        d = image_folder(path=str(top), labels=True, resolution=32, root=str(tmp_path / "data"))
    assert d.info["classes"] == ["cats", "dogs"] and d.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert d.labels.dtype == torch.int64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        limited = image_folder(path=str(top), labels=True, limit=2, resolution=32, cache=False)
    assert limited.info["classes"] == ["cats", "dogs"] and limited.labels.tolist() == [0, 0]
    flat = tmp_path / "flat"
    flat.mkdir()
    face(1, (20, 20)).save(flat / "x.png")
    with pytest.raises(GankitError, match="no images in subfolders"):
        image_folder(path=str(flat), labels=True)


def test_resize_scales_the_shorter_side_and_crops_the_centre(tmp_path):
    top = tmp_path / "wide"
    top.mkdir()
    img = np.zeros((40, 160, 3), np.uint8)  # red | green | blue: only green is left after the centre crop
    img[:, :50, 0] = img[:, 50:110, 1] = img[:, 110:, 2] = 255
    Image.fromarray(img).save(top / "w.png")
    x = image_folder(path=str(top), resolution=20, cache=False).x[0].int()
    assert x.shape == (3, 20, 20) and (x[1] > 250).all() and (x[0] < 5).all() and (x[2] < 5).all()
    # crop=40 of the original, then 40 -> 20: the same green square
    assert torch.equal(image_folder(path=str(top), resolution=20, crop=40, cache=False).x[0].int(), x)


def test_sixteen_bit_grayscale_and_exif_rotation(tmp_path):
    top = tmp_path / "odd"
    top.mkdir()
    Image.fromarray(np.full((16, 16), 32896, np.uint16)).save(top / "a16.png")  # 16-bit, 50% grey
    tall = np.zeros((30, 60, 3), np.uint8)
    tall[:, :20] = 255  # bright left third; EXIF 6 = shown rotated 90 degrees clockwise: bright top
    img = Image.fromarray(tall)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(top / "b_rot.jpg", exif=exif, quality=95)
    x = image_folder(path=str(top), resolution=30, channels=1, cache=False).x
    assert int(x[0].min()) == int(x[0].max()) == 128
    rows = (x[1, 0] > 128).float().mean(dim=1)
    assert rows[0] == 1 and rows[-1] == 0


def test_hflip_flips_about_half_of_each_batch(tmp_path):
    top = tmp_path / "one"
    top.mkdir()
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4] = 255  # bright left half
    Image.fromarray(img).save(top / "a.png")
    d = image_folder(path=str(top), resolution=8, hflip=True, cache=False)
    left_bright = d.sample(400).x[:, 0, 0, 0] > 0
    assert 120 < int(left_bright.sum()) < 280
    assert (image_folder(path=str(top), resolution=8, cache=False).sample(50).x[:, 0, 0, 0] > 0).all()


def test_decoded_folder_is_cached_on_disk(tmp_path, monkeypatch):
    top = make_folder(tmp_path)
    root = tmp_path / "data"
    first = image_folder(path=str(top), resolution=32, labels=True, root=str(root))
    assert len(list((root / "cache").glob("*.pt"))) == 1 and not list((root / "cache").glob(".*"))
    calls = []
    real = folder_mod.decode_image_file

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    def failing(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(folder_mod, "decode_image_file", failing)
    second = image_folder(path=str(top), resolution=32, labels=True, root=str(root))
    assert torch.equal(first.x, second.x) and torch.equal(first.labels, second.labels)
    assert second.info["classes"] == ["cats", "dogs"]
    monkeypatch.setattr(folder_mod, "decode_image_file", counting)
    image_folder(path=str(top), resolution=64, labels=True, root=str(root))  # other parameters: a new entry
    assert len(calls) == 6
    calls.clear()
    os.utime(top / "dogs" / "d.png", ns=(1, 1))  # a changed file: decoded again
    image_folder(path=str(top), resolution=32, labels=True, root=str(root))
    assert len(calls) == 6
    calls.clear()
    image_folder(path=str(top), resolution=32, labels=True, root=str(root), cache=False)
    assert len(calls) == 6


def test_celeba_folder_resized_and_split(tmp_path):
    make_celeba(tmp_path)
    d = celeba(root=str(tmp_path), download=False)
    assert d.x.shape == (6, 3, 64, 64) and d.x.dtype == torch.uint8 and d.hflip and d.labels is None
    assert len(celeba(root=str(tmp_path), split="train")) == 4
    assert len(celeba(root=str(tmp_path), split="valid")) == 1
    assert celeba(root=str(tmp_path), resolution=32, crop=140, limit=2).x.shape == (2, 3, 32, 32)
    other = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "celeba" / "img_align_celeba", other)
    assert len(celeba(path=str(other), root=str(tmp_path / "data"))) == 6
    with pytest.raises(GankitError, match="list_eval_partition.txt"):
        celeba(path=str(other), split="test")


# --- streaming -----------------------------------------------------------------------------------------------

def test_folder_streams_when_over_the_memory_budget(tmp_path):
    top = make_folder(tmp_path)
    d = image_folder(path=str(top), resolution=32, labels=True, max_memory_mb=0.01, workers=0)
    assert isinstance(d, StreamingImageData) and len(d) == 6 and d.shape == (3, 32, 32) and d.kind == "image"
    assert d.labels.tolist() == [0, 0, 0, 1, 1, 1] and d.info["classes"] == ["cats", "dogs"]
    d = d.to(torch.device("cpu"))
    for _ in range(3):
        batch = d.sample(8).x
        assert batch.shape == (8, 3, 32, 32) and batch.dtype == torch.float32
        assert -1 <= batch.min() and batch.max() <= 1
    in_memory = image_folder(path=str(top), resolution=32, cache=False)
    assert torch.allclose(d.real_batch(4), in_memory.real_batch(4))


def test_streaming_with_worker_processes(tmp_path):
    make_idx_set(tmp_path, "MNIST")
    d = mnist(root=str(tmp_path), resolution=32, max_memory_mb=0.01, workers=1)
    assert isinstance(d, StreamingImageData) and len(d) == 50 and d.shape == (1, 32, 32)
    batches = [d.sample(10).x for _ in range(3)]
    assert all(b.shape == (10, 1, 32, 32) and -1 <= b.min() and b.max() <= 1 for b in batches)
    expected = mnist(root=str(tmp_path), resolution=32).real_batch(5)
    assert torch.allclose(d.real_batch(5), expected)
    d.close()


def test_streaming_skips_unreadable_files(tmp_path):
    top = make_folder(tmp_path)
    (top / "cats" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        d = image_folder(path=str(top), resolution=16, max_memory_mb=0.001, workers=0)
    assert len(d) == 6 and d.sample(12).x.shape == (12, 3, 16, 16)


# --- bad input -----------------------------------------------------------------------------------------------

def test_unreadable_and_truncated_files_are_skipped_with_one_warning(tmp_path):
    top = make_folder(tmp_path)
    good = (top / "cats" / "deep" / "b.jpg").read_bytes()
    (top / "cats" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (top / "dogs" / "garbage.png").write_bytes(b"this is not a png")
    (top / "dogs" / "empty.webp").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = image_folder(path=str(top), resolution=16, root=str(tmp_path / "data"))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "skipped 3 unreadable image file(s)" in messages[0], messages
    assert len(d) == 6
    with pytest.warns(UserWarning, match="skipped 3"):  # the cached result says so again
        assert len(image_folder(path=str(top), resolution=16, root=str(tmp_path / "data"))) == 6


@pytest.mark.parametrize("case, needle", [
    ("missing", "does not exist"),
    ("file", "is not a folder"),
    ("empty", "is empty"),
    ("no_images", "holds no images"),
    ("all_bad", "none of its 2 image files can be read"),
])
def test_bad_folders_are_one_line_user_errors(tmp_path, case, needle):
    target = tmp_path / "target"
    if case == "file":
        target.write_text("x")
    elif case != "missing":
        target.mkdir()
    if case == "no_images":
        (target / "readme.txt").write_text("x")
    if case == "all_bad":
        (target / "a.png").write_bytes(b"nope")
        (target / "b.jpg").write_bytes(b"nope")
    with pytest.raises(GankitError) as err:
        image_folder(path=str(target), cache=False)
    assert needle in str(err.value) and "\n" not in str(err.value) and str(target) in str(err.value)


def test_impossible_channels_are_a_user_error(tmp_path):
    top = make_folder(tmp_path)
    with pytest.raises(GankitError, match="channels must be 1 .* or 3 .*, got 2"):
        image_folder(path=str(top), channels=2)
    with pytest.raises(GankitError, match="channels must be"):
        mnist(root=str(tmp_path), channels=2)
    with pytest.raises(ConfigError, match="data.channels must be one of 1, 3, got 2"):
        DATASETS.build({"name": "image_folder", "path": str(top), "channels": 2}, "data")
    with pytest.raises(ConfigError, match="missing key data.path"):
        DATASETS.build({"name": "image_folder"}, "data")


# --- the real MNIST ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason=f"no offline MNIST copy at {SHARED_DATA}/mnist")
def test_real_mnist_from_the_shared_copy(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (SHARED_DATA / "mnist").glob("*-ubyte.gz"):
        shutil.copy(f, raw / f.name)
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz") as src:  # one split uncompressed, as torchvision leaves it
        (raw / "t10k-images-idx3-ubyte").write_bytes(src.read())
    d = mnist(root=str(tmp_path), limit=3000, resolution=32, download=False)
    assert d.x.shape == (3000, 1, 32, 32) and d.x.dtype == torch.uint8
    assert d.labels[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]  # the well-known first training labels
    assert set(d.labels.tolist()) == set(range(10))
    mean = d.x.float().mean() / 255
    assert 0.08 < mean < 0.2  # mostly black background
    test = mnist(split="test", root=str(tmp_path), download=False)
    assert len(test) == 10_000 and test.labels[:5].tolist() == [7, 2, 1, 0, 4]
