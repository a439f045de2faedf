"""Data-parallel training on torch.distributed (gloo on the CPU): N processes at batch B/N train as one process at
batch B, checkpoints move between process counts, and a failure on any rank stops the run with one line.

Each multi-process run is a real launch (torchrun, or gankit train --nproc), one thread per process.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gankit import config
from gankit.distributed.launch import threads_per_process
from gankit.experiment import Experiment
from gankit.run import RunDir, load_checkpoint
from gankit_testing import ROOT, assert_user_error


WORKER = ROOT / "tests" / "distributed_worker.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
# BN-free MLPs with SGD: Adam's normalisation would blow float rounding up to lr-sized steps on near-zero gradients.
CONFIG = """
name: dist_test
data: {name: ring, n: 2000}
model:
  z_dim: 8
  generator: {name: mlp, width: 32, depth: 2}
  discriminator: {name: mlp, width: 32, depth: 2}
loss: ns
regularizers: [{name: r1, weight: 1.0}]
optim:
  generator: {name: sgd, lr: 0.05}
  discriminator: {name: sgd, lr: 0.05}
train: {steps: 6, batch_size: 64, n_critic: 2, progress: false, tensorboard: false, snapshot_steps: [3]}
eval: {n_samples: 200}
"""
BATCH_NORM = ["model.generator.batch_norm=true", "model.discriminator.batch_norm=true"]


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "dist.yaml"
    path.write_text(CONFIG)
    return path


def worker(nproc: int, *args: str) -> subprocess.CompletedProcess:
    """`gankit ARGS` in nproc processes (torchrun), every rank drawing its slice of one global batch."""
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
              if nproc > 1 else [sys.executable])
    return subprocess.run([*launch, str(WORKER), *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=120)


def gankit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gankit", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=120)


def weights(run_dir) -> dict[str, torch.Tensor]:
    state = load_checkpoint(RunDir(run_dir).checkpoint)
    return {f"{n}.{k}": v.float() for n, sd in state["networks"].items() for k, v in sd.items()}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def gankit_errors(result: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.startswith("gankit: error")]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, cfg_path):
    out = tmp_path_factory.mktemp("two") / "run"
    result = worker(2, "train", cfg_path, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def test_two_processes_at_half_the_batch_train_as_one_process(tmp_path, cfg_path, two_process_run):
    result = worker(1, "train", cfg_path, "--out", tmp_path / "one")
    assert result.returncode == 0, result.stderr
    one, two = weights(tmp_path / "one"), weights(two_process_run)
    assert max_difference(one, two) < 1e-5
    init = {f"{n}.{k}": v.float() for n, net in Experiment(config.load(str(cfg_path))).networks.items()
            for k, v in net.state_dict().items()}
    assert max_difference(one, init) > 1e-2  # the runs did train
    state = load_checkpoint(RunDir(two_process_run).checkpoint)
    assert len(state["rng_ranks"]) == 2 and not torch.equal(state["rng_ranks"][0]["cpu"], state["rng_ranks"][1]["cpu"])
    records = [json.loads(ln) for ln in (two_process_run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["eval"]["n_modes"] == 8  # rank 0 wrote the run directory


def test_resume_with_the_same_processes_is_exact(tmp_path, cfg_path):
    """Each rank's own noise stream (data indices, latents) is saved and restored."""
    full, part = tmp_path / "full", tmp_path / "part"
    assert gankit("train", "--nproc", "2", cfg_path, "--out", full).returncode == 0
    assert gankit("train", "--nproc", "2", cfg_path, "--out", part, "train.steps=3").returncode == 0
    result = gankit("train", "--nproc", "2", "--resume", part, "train.steps=6")
    assert result.returncode == 0, result.stderr
    assert max_difference(weights(part), weights(full)) == 0.0


def test_sync_batch_norm_normalises_over_the_global_batch(tmp_path, cfg_path):
    """Without sync_batch_norm each rank normalises over its own half: the runs then differ by about 1e-2
    (measured once; docs/distributed.md), so agreement to 1e-5 here is the synchronisation's doing."""
    one = worker(1, "train", cfg_path, "--out", tmp_path / "one", *BATCH_NORM)
    synced = worker(2, "train", cfg_path, "--out", tmp_path / "sync", *BATCH_NORM, "train.sync_batch_norm=true")
    for result in (one, synced):
        assert result.returncode == 0, result.stderr
    reference = weights(tmp_path / "one")
    assert any("running_mean" in k for k in reference)
    assert max_difference(reference, weights(tmp_path / "sync")) < 1e-5  # running statistics included


def test_conditional_wgan_gp_trains_in_two_processes_and_resumes_in_one(tmp_path):
    """A gradient penalty (autograd.grad, double backward) and class conditioning, in one run."""
    out = tmp_path / "cwgan_gp"
    result = gankit("train", "--nproc", "2", "ring_cgan", "--out", out, "loss=wgan",
                    "regularizers=[{name: gp, weight: 1.0}]", "train.steps=4", "train.batch_size=64",
                    "eval.n_samples=200", "train.progress=false", "train.tensorboard=false")
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert results["step"] == 4 and len(results["class_accuracy_per_class"]) == 8
    saved = weights(out)
    assert len(load_checkpoint(RunDir(out).checkpoint)["rng_ranks"]) == 2
    result = gankit("train", "--resume", out, "train.steps=6")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["step"] == 6
    assert max_difference(saved, weights(out)) > 0  # it went on from the 2-process weights
    state = load_checkpoint(RunDir(out).checkpoint)
    assert state["step"] == 6 and "rng_ranks" not in state


def test_sharded_image_evaluation_equals_one_process(tmp_path):
    out = tmp_path / "images"
    result = gankit("train", "--nproc", "2", "--out", out, "data={name: noise_images, n: 64, channels: 3, resolution: 32}",
                    "model.generator={name: dcgan, width: 8}", "model.discriminator={name: dcgan, width: 8}",
                    "regularizers=[]", "schedules=[]", "train.steps=2", "train.batch_size=16", "eval.n_samples=600",
                    "eval.metrics=[fid,is]", "eval.extractor=random-test", "eval.grid_size=4",
                    "train.progress=false", "train.tensorboard=false")
    assert result.returncode == 0, result.stderr
    sharded = json.loads(result.stdout)
    # The same checkpoint, samples and seed in one process (batches of 250: rank 0 had two, rank 1 one).
    single = gankit("eval", out, "-n", "600", "--seed", "2", "--batch-size", "250")
    assert single.returncode == 0, single.stderr
    single = json.loads(single.stdout)
    for name in ("fid", "is"):
        assert sharded[name]["value"] == pytest.approx(single[name]["value"], rel=1e-5)
    assert sharded["pixel_mean"] == single["pixel_mean"]


def test_nan_on_one_rank_stops_every_rank_with_one_line(tmp_path, cfg_path):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(WORKER), "train",
         str(cfg_path), "--out", str(tmp_path / "nan"), "train.log_every=2", "train.steps=20"],
        capture_output=True, text=True, env={**ENV, "NAN_AT": "1:7"}, timeout=120)  # rank 1's 7th batch: step 4
    assert result.returncode != 0
    assert gankit_errors(result) == ["gankit: error: training diverged: a loss became NaN or infinite at step 4; "
                                     "no checkpoint had been saved yet"]


def test_a_killed_rank_ends_the_run_with_an_error_not_a_hang(tmp_path, cfg_path):
    out = tmp_path / "killed"
    launcher = subprocess.Popen([sys.executable, "-m", "gankit", "train", "--nproc", "2", str(cfg_path), "--out",
                                 str(out), "train.steps=1000000", "train.log_every=1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.time() + 60
        while not (out / "metrics.jsonl").is_file() and time.time() < deadline:
            time.sleep(0.2)
        assert (out / "metrics.jsonl").is_file(), "the run did not start"
        workers = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2
        os.kill(int(workers[-1]), signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode == 1
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "was killed by SIGKILL; the other ranks were stopped" in lines[0], stderr
    assert "Traceback" not in stderr


def test_a_user_error_under_the_launcher_is_one_line(tmp_path, cfg_path):
    result = gankit("train", "--nproc", "2", cfg_path, "--out", tmp_path / "odd", "train.batch_size=63")
    assert_user_error(result, "train.batch_size (63) must be a multiple of the 2 processes")
    assert not (tmp_path / "odd").exists()
    assert_user_error(gankit("train", "--nproc", "0", cfg_path), "--nproc must be >= 1")
    assert_user_error(gankit("train", "--nproc", "2", cfg_path, "train.dist_timeout=0"), "train.dist_timeout")


@pytest.mark.parametrize("override, key", [("train.sync_batch_norm=maybe", "train.sync_batch_norm"),
                                           ("train.dist_timeout=-5", "train.dist_timeout"),
                                           ("train.dist_timeout=soon", "train.dist_timeout")])
def test_distributed_options_reject_garbage(override, key):
    from gankit.errors import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config.load(None, [override])


@pytest.mark.parametrize("command", [["study", "main", "--seeds", "2"], ["sample", "somewhere", "--out", "x.png"]])
def test_one_process_commands_refuse_a_launcher(tmp_path, command):
    env = {**ENV, "WORLD_SIZE": "2", "RANK": "0"}
    result = subprocess.run([sys.executable, "-m", "gankit", *command], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=60)
    assert_user_error(result, "runs in one process")


def test_threads_are_shared_out_between_local_processes():
    cores = len(os.sched_getaffinity(0))
    assert threads_per_process(1) == cores
    assert threads_per_process(cores * 2) == 1
