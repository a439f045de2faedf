"""Image GANs through the one engine: every shipped config takes a step, and a short run learns."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from gankit import config
from gankit.train import Trainer
from gankit_testing import SHARED_DATA, run_cli_here


QUIET = ["train.progress=false", "train.tensorboard=false"]
SHAPES = {"mnist": (1, 28), "fashion_mnist": (1, 28), "cifar10": (3, 32), "celeba": (3, 64)}


@pytest.mark.parametrize("name", [n for n in config.shipped_configs() if n.split("_")[0] in
                                  ("mnist", "fashion", "cifar10", "celeba")])
def test_every_image_config_trains_a_step(tmp_path, name):
    """The shipped networks, losses and regularizers, on noise images of the config's own shape."""
    cfg = config.load(name)
    channels, resolution = SHAPES[cfg.data["name"]]
    resolution = cfg.data.get("resolution") or resolution  # e.g. mnist_infogan: MNIST resized to 32x32
    classes = 10 if cfg.model.conditional else 0  # conditional configs: labelled noise
    overrides = QUIET + [f"data={{name: noise_images, n: 16, channels: {channels}, resolution: {resolution}, "
                         f"n_classes: {classes}}}", "eval.metrics=[]",
                         "train.steps=1", "train.batch_size=4", "eval.n_samples=8", "eval.grid_size=4",
                         "train.sample_every=0", "model.generator.width=16", "model.discriminator.width=16"]
    trainer = Trainer.start(config.load(name, overrides), tmp_path / "run")
    results = trainer.fit()
    assert len(results["pixel_mean"]) == channels
    assert (tmp_path / "run" / "samples" / "progress.gif").is_file()


def blob_images(folder, n=256, size=28):
    """Dark images with one bright square at a random place: an easy distribution with a known mean and std."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        img = np.zeros((size, size), np.uint8)
        x, y = rng.integers(4, size - 12, 2)
        img[y:y + 8, x:x + 8] = 255
        Image.fromarray(img).save(folder / f"{i:03d}.png")


def test_dcgan_samples_move_from_noise_toward_the_data(tmp_path):
    blob_images(tmp_path / "blobs")
    overrides = QUIET + [
        f"data={{name: image_folder, path: {tmp_path / 'blobs'}, resolution: 28, channels: 1, root: {tmp_path}}}",
        "model.z_dim=32", "model.generator={name: dcgan, width: 16}", "model.discriminator={name: dcgan, width: 16}",
        "regularizers=[]", "optim.generator={name: adam, lr: 2.0e-3, betas: [0.5, 0.999]}",
        "optim.discriminator={name: adam, lr: 2.0e-3, betas: [0.5, 0.999]}", "train.batch_size=64",
        "eval.n_samples=256", "train.seed=0", "train.sample_every=50",
    ]
    untrained = Trainer.start(config.load(None, overrides + ["train.steps=1"]), tmp_path / "r0").fit()
    trained = Trainer.start(config.load(None, overrides + ["train.steps=150"]), tmp_path / "r1").fit()
    data_mean, data_std = trained["data_pixel_mean"][0], trained["data_pixel_std"][0]
    assert abs(trained["pixel_mean"][0] - data_mean) < 0.5 * abs(untrained["pixel_mean"][0] - data_mean), (untrained, trained)
    assert abs(trained["pixel_std"][0] - data_std) < 0.5 * abs(untrained["pixel_std"][0] - data_std), (untrained, trained)
    frames = Image.open(tmp_path / "r1" / "samples" / "progress.gif")
    assert frames.n_frames >= 2


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist is absent")
def test_mnist_end_to_end_through_the_command_line(tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (SHARED_DATA / "mnist").glob("*.gz"):
        shutil.copy(f, raw / f.name)
    out = tmp_path / "run"
    result = run_cli_here("train", "mnist_dcgan", "--out", str(out), *QUIET, f"data.root={tmp_path / 'data'}",
                     "data.limit=3000", "model.generator.width=16", "model.discriminator.width=16",
                     "train.steps=60", "train.sample_every=30", "eval.n_samples=500", "train.batch_size=64")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["data_pixel_mean"][0] < -0.6  # MNIST is mostly black
    assert (out / "samples" / "step_000030.png").is_file() and (out / "samples" / "progress.gif").is_file()
    assert run_cli_here("sample", str(out), "-n", "9", "--out", str(tmp_path / "grid.png")).returncode == 0
    assert run_cli_here("sample", str(out), "-n", "7", "--out", str(tmp_path / "s.npz")).returncode == 0
    samples = np.load(tmp_path / "s.npz")["samples"]
    assert samples.shape == (7, 1, 28, 28) and samples.dtype == np.uint8
    assert run_cli_here("sample", str(out), "-n", "3", "--out", str(tmp_path / "pngs")).returncode == 0
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["0.png", "1.png", "2.png"]
    with Image.open(tmp_path / "pngs" / "0.png") as im:
        assert im.size == (28, 28)
    # The offline classifier metrics, against the MNIST test split.
    result = run_cli_here("eval", str(out), "--metrics", "cfd,cs,classes", "-n", "500", "--ref", "test")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["cfd"]["value"] > 0 and values["cfd"]["protocol"]["reference"] == "mnist/test"
    assert 1.0 <= values["cs"]["value"] <= 10.0
    assert 1 <= values["classes"]["value"]["classes_covered"] <= 10


NOISE_RUN = QUIET + ["data={name: noise_images, n: 1200, channels: 3, resolution: 32}", "model.z_dim=16",
                     "model.generator={name: dcgan, width: 8}", "model.discriminator={name: dcgan, width: 8}",
                     "regularizers=[]", "train.batch_size=16", "eval.grid_size=4", "eval.extractor=random-test"]


@pytest.fixture(scope="module")
def metric_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("metrics") / "run"
    cfg = config.load(None, NOISE_RUN + ["train.steps=6", "eval.every=3", "eval.n_samples=1000",
                                         "eval.metrics=[fid, kid, is]", "eval.best=fid"])
    results = Trainer.start(cfg, out).fit()
    return out, results


def test_training_evaluates_image_metrics_and_keeps_the_best(metric_run):
    out, results = metric_run
    assert set(results) >= {"fid", "kid", "is", "best"}
    protocol = results["fid"]["protocol"]
    assert protocol["n_generated"] == 1000 and protocol["weights"] == "raw" and protocol["step"] == 6
    assert protocol["reference"].startswith("noise_images")
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    fids = {r["step"]: r["eval"]["fid"]["value"] for r in evals}
    assert sorted(fids) == [3, 6]
    best_step = min(fids, key=fids.get)
    assert results["best"]["step"] == best_step and (out / "checkpoints" / "best.pt").is_file()


def test_eval_command_prints_metrics_with_their_protocol(metric_run):
    out, _ = metric_run
    result = run_cli_here("eval", str(out), "--metrics", "fid,prc", "-n", "300", "--best")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["checkpoint"] == "best" and values["n_samples"] == 300
    assert values["fid"]["protocol"]["n_generated"] == 300 and "extractor" in values["fid"]["protocol"]
    assert set(values["prc"]["value"]) >= {"precision", "recall"}


@pytest.mark.parametrize("args,needles", [
    (["--metrics", "fid,nope"], ["unknown metric 'nope'", "fid", "kid"]),
    (["--metrics", "kid", "-n", "500"], ["KID subset size"]),
    (["--metrics", "fid", "--ref", "validation"], ["--ref validation"]),
    (["--metrics", "cfd"], ["noise_images"]),
])
def test_eval_command_errors(metric_run, args, needles):
    from gankit_testing import assert_user_error

    out, _ = metric_run
    assert_user_error(run_cli_here("eval", str(out), *args), *needles)


@pytest.mark.parametrize("overrides,message", [
    (["eval.metrics=[kid]", "eval.n_samples=500"], "eval.n_samples 500 is smaller than the KID subset size"),
    (["eval.metrics=[fid]", "eval.split=validation"], "eval.split validation"),
    (["eval.metrics=[fid, bogus]"], "unknown metric 'bogus'"),
    (["eval.metrics=[fid]", "eval.best=kid"], "eval.best 'kid' must be one of fid"),
])
def test_bad_image_eval_settings_fail_before_training(tmp_path, overrides, message):
    from gankit.errors import GankitError

    with pytest.raises(GankitError, match=message):
        Trainer.start(config.load(None, NOISE_RUN + overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()
