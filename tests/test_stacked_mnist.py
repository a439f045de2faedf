"""Stacked MNIST (1,000 modes) and the stacked_modes metric: the data set on tiny IDX fixtures (always) and on the
real MNIST of ../shared/data (skipped when it is absent), the metric on hand-made inputs, the shipped configs, a
short training run, and the one-line errors."""
from __future__ import annotations

import gzip
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import gankit.data  # noqa: F401  (registers)
from gankit import config
from gankit.data.stacked_mnist import PACGAN_N, mode_of, stacked_mnist
from gankit.errors import GankitError
from gankit.metrics import compute_metrics, metric_scalar, parse_names
from gankit.metrics.stacked import mode_counts, mode_histogram, stacked_modes
from gankit_testing import SHARED_DATA, assert_user_error, run_cli_here

MNIST = SHARED_DATA / "mnist"
QUIET = ["train.progress=false", "train.tensorboard=false", "train.sample_every=0", "train.snapshot_steps=[]"]


@pytest.fixture(autouse=True)
def private_data_root(tmp_path, monkeypatch):
    """Nothing a test loads without an explicit root touches the user's data root."""
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "default-data-root"))


def write_idx(path: Path, array: np.ndarray) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def fake_root(tmp_path):
    """MNIST-format files of 40 train and 20 test 'digits': image i is constant with value i, label i mod 10."""
    raw = tmp_path / "fake" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n, start in (("train", 40, 0), ("t10k", 20, 40)):
        values = np.arange(start, start + n)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", np.repeat(values, 28 * 28).reshape(n, 28, 28))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", values % 10)
    return str(tmp_path / "fake")


@pytest.fixture
def mnist_root(tmp_path):
    """A data root holding links to the shared MNIST files."""
    if not MNIST.is_dir():
        pytest.skip(f"no offline MNIST copy at {MNIST}")
    raw = tmp_path / "real" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in MNIST.glob("*-ubyte.gz"):
        (raw / f.name).symlink_to(f)
    return str(tmp_path / "real")


# --- the data set --------------------------------------------------------------------------------------------

def test_stacked_data_shape_range_labels_and_pool(fake_root):
    data = stacked_mnist(n=500, root=fake_root)
    assert data.shape == (3, 28, 28) and len(data) == 500 and data.kind == "image"
    assert data.n_classes == 1000 and data.info["classes"][42] == "042"
    assert len(data.pool) == 60 and data.pool.dtype == torch.uint8  # split all: 40 train + 20 test digits
    images = data.x[torch.arange(500)]
    assert images.shape == (500, 3, 28, 28) and images.dtype == torch.uint8
    # Channel c of sample i is pool digit index[i, c] (value = its index here); the label is the triple.
    assert torch.equal(images[:, :, 0, 0].long(), data.index)
    triples = data.index % 10
    assert torch.equal(data.labels, triples[:, 0] * 100 + triples[:, 1] * 10 + triples[:, 2])
    assert torch.equal(data.labels, mode_of(data.digit_labels))
    assert int(data.index[:, :].max()) >= 40  # test digits are drawn too
    batch = data.sample(64)
    assert batch.x.shape == (64, 3, 28, 28) and batch.x.dtype == torch.float32
    assert float(batch.x.min()) >= -1 and float(batch.x.max()) <= 1
    pool_value = ((batch.x[:, :, 0, 0] + 1) * 127.5).round().long()  # each channel is a whole digit
    assert torch.equal(batch.y, mode_of(pool_value % 10))
    real = data.real_batch(10)
    assert torch.allclose(real, images[:10].float() / 127.5 - 1)


def test_stacked_data_is_fixed_by_its_seed(fake_root):
    a, b = stacked_mnist(n=300, seed=3, root=fake_root), stacked_mnist(n=300, seed=3, root=fake_root)
    c = stacked_mnist(n=300, seed=4, root=fake_root)
    assert torch.equal(a.index, b.index) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.index, c.index)
    torch.manual_seed(0)  # the training seed does not move the data set
    assert torch.equal(stacked_mnist(n=300, seed=3, root=fake_root).index, a.index)


def test_stacked_data_splits_and_resolution(fake_root):
    train = stacked_mnist(n=200, split="train", root=fake_root)
    test = stacked_mnist(n=200, split="test", root=fake_root)
    assert len(train.pool) == 40 and int(train.x[torch.arange(200)].max()) < 40
    assert len(test.pool) == 20 and int(test.x[torch.arange(200)].min()) >= 40
    big = stacked_mnist(n=50, resolution=32, root=fake_root)
    assert big.shape == (3, 32, 32) and big.sample(8).x.shape == (8, 3, 32, 32)


def test_stacked_data_defaults_are_the_pacgan_protocol():
    from gankit.registry import DATASETS

    spec = DATASETS.resolve("stacked_mnist", "data")
    assert spec["n"] == PACGAN_N == 128_000 and spec["split"] == "all" and spec["resolution"] == 28


def test_missing_mnist_is_a_one_line_error(tmp_path):
    with pytest.raises(GankitError) as exc:
        stacked_mnist(n=10, root=str(tmp_path / "empty"), download=False)
    assert "MNIST" in str(exc.value) and "\n" not in str(exc.value)


def test_real_stacked_mnist(mnist_root):
    data = stacked_mnist(root=mnist_root)
    assert len(data) == 128_000 and len(data.pool) == 70_000
    counts = torch.bincount(data.labels, minlength=1000)
    assert int((counts > 0).sum()) == 1000 and 80 < int(counts.min()) and int(counts.max()) < 200  # ~128 each


# --- the metric ----------------------------------------------------------------------------------------------

def test_mode_histogram_by_hand():
    digits = torch.tensor([[0, 4, 2], [0, 4, 2], [9, 9, 9], [1, 0, 0]])
    counts = mode_counts(digits)
    assert counts[42] == 2 and counts[999] == 1 and counts[100] == 1 and int(counts.sum()) == 4
    out = mode_histogram(digits)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert out["modes"] == 3 and out["kl_to_uniform"] == pytest.approx(float((p * torch.log(1000 * p)).sum()))
    assert out["top_modes"] == {"042": 2, "100": 1, "999": 1}
    assert out["channel_digit_histograms"][0] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    every = torch.stack([torch.arange(1000) // 100, torch.arange(1000) // 10 % 10, torch.arange(1000) % 10], 1)
    assert mode_histogram(every)["modes"] == 1000 and mode_histogram(every)["kl_to_uniform"] == pytest.approx(0)


@pytest.mark.parametrize("side", [28, 32])
def test_a_constant_image_is_one_mode_with_kl_log_1000(side):
    out = stacked_modes(lambda k: torch.full((k, 3, side, side), -1.0), 300, device="cpu", batch_size=128)
    value = out["value"]
    assert value["modes"] == 1 and value["kl_to_uniform"] == pytest.approx(math.log(1000))
    assert value["n"] == 300 and out["protocol"]["n_generated"] == 300
    json.dumps(out)


def from_tensor(x: torch.Tensor):
    state = {"at": 0}

    def generate(k: int) -> torch.Tensor:
        out = x[state["at"]:state["at"] + k]
        state["at"] += k
        return out

    return generate


def test_real_stacked_digits_cover_almost_every_mode(mnist_root):
    n = 4000
    spec = {"name": "stacked_mnist", "root": mnist_root, "split": "test", "seed": 1}
    data = stacked_mnist(n=n, split="test", seed=1, root=mnist_root)
    out = compute_metrics("stacked_modes", from_tensor(data.real_batch(n)), n, spec, device="cpu", batch_size=1000,
                          protocol={"step": 0})
    value, proto = out["stacked_modes"]["value"], out["stacked_modes"]["protocol"]
    truth = mode_histogram(data.digit_labels)  # the modes of the true labels
    # 4,000 draws of 1,000 equally likely modes cover 1000 (1 - e^-4) = 982 of them; KL ~ 999 / (2 n) = 0.12.
    assert value["modes"] >= 960 and abs(value["modes"] - truth["modes"]) <= 15
    assert value["kl_to_uniform"] < 0.2 and abs(value["kl_to_uniform"] - truth["kl_to_uniform"]) < 0.03
    assert proto["n_generated"] == n and proto["step"] == 0 and proto["classifier_test_accuracy"] >= 0.99
    assert metric_scalar("stacked_modes", out["stacked_modes"]) == value["kl_to_uniform"]
    assert "stacked_modes" in parse_names("fid,stacked_modes")


def test_the_metric_refuses_images_without_three_channels(mnist_root):
    with pytest.raises(GankitError) as exc:
        stacked_modes(lambda k: torch.zeros(k, 1, 28, 28), 10, device="cpu")
    assert "3-channel" in str(exc.value) and "1x28x28" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(GankitError) as exc:
        compute_metrics("stacked_modes", lambda k: torch.zeros(k, 1, 28, 28), 10,
                        {"name": "mnist", "root": mnist_root, "limit": 100}, device="cpu")
    assert "3-channel" in str(exc.value) and "mnist/train" in str(exc.value) and "\n" not in str(exc.value)


def test_stacked_modes_on_a_one_channel_run_exits_2(tmp_path):
    """Through the CLI, on a run of 1-channel noise images: `gankit eval --metrics stacked_modes` and a config
    asking for it are one-line errors with exit status 2."""
    data = "data={name: noise_images, n: 64, channels: 1, resolution: 28}"
    small = ["model.generator.width=8", "model.discriminator.width=8", "train.batch_size=8", "train.steps=1",
             "eval.n_samples=16", "eval.grid_size=4"]
    run = tmp_path / "run"
    done = run_cli_here("train", "mnist_dcgan", data, *QUIET, *small, "--out", str(run))
    assert done.returncode == 0, done.stderr
    assert_user_error(run_cli_here("eval", str(run), "--metrics", "stacked_modes", "-n", "16"), "stacked_modes",
                      "3-channel", "1x28x28")
    assert_user_error(run_cli_here("train", "mnist_dcgan", data, *QUIET, *small, "eval.metrics=[stacked_modes]",
                              "--out", str(tmp_path / "run2")), "eval.metrics", "3-channel")


# --- the shipped configs -------------------------------------------------------------------------------------

def test_dcgan_config_states_the_pacgan_settings():
    cfg = config.load("stacked_mnist_dcgan")
    assert cfg.data["name"] == "stacked_mnist" and cfg.data["n"] == 128_000 and cfg.data["split"] == "all"
    assert cfg.model.z_dim == 100 and cfg.model.z_dist == "uniform" and cfg.loss["name"] == "ns"
    assert cfg.optim.generator["lr"] == cfg.optim.discriminator["lr"] == 2e-4
    assert cfg.optim.generator["betas"] == [0.5, 0.999] and cfg.regularizers == []
    assert cfg.train.batch_size == 64 and cfg.train.steps == 100_000 and cfg.train.n_critic == 1
    assert cfg.train.g_updates == 2  # "Run g_optim twice" on the same z
    assert cfg.eval.n_samples == 26_000 and cfg.eval.metrics == ["stacked_modes"]


def test_dcgan_config_trains_briefly_and_reports_modes(mnist_root, tmp_path):
    run = tmp_path / "run"
    done = run_cli_here("train", "stacked_mnist_dcgan", f"data.root={mnist_root}", "data.n=2000", "train.steps=12",
                   "eval.n_samples=200", "eval.every=0", "eval.grid_size=16", "train.log_every=6", *QUIET,
                   "--out", str(run))
    assert done.returncode == 0, done.stderr
    result = json.loads((run / "eval.json").read_text())
    value = result["stacked_modes"]["value"]
    assert 1 <= value["modes"] <= 200 and 0 <= value["kl_to_uniform"] <= math.log(1000) + 1e-9
    assert result["stacked_modes"]["protocol"]["n_generated"] == 200


def test_pacdcgan2_config(mnist_root, tmp_path):
    cfg = config.load("stacked_mnist_pacdcgan2")
    assert cfg.model.pack == 2 and cfg.train.batch_size == 128  # 64 packs of 2, as PacGAN's batch of 64 packs
    from gankit.experiment import Experiment

    overrides = [f"data.root={mnist_root}", "data.n=2000", "train.device=cpu"]
    exp = Experiment(config.load("stacked_mnist_pacdcgan2", overrides))
    assert exp.discriminator.inner.data_shape[0] == 6  # D sees 2 packed 3-channel images
    run = tmp_path / "run"
    done = run_cli_here("train", "stacked_mnist_pacdcgan2", *overrides, "train.steps=6", "eval.n_samples=200",
                   "eval.every=0", "eval.grid_size=16", *QUIET, "--out", str(run))
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "eval.json").read_text())["stacked_modes"]["value"]["modes"] >= 1
