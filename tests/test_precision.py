"""precision auto on a CPU: measured on the machine, cached, recorded in the run, and never touching the run's state."""
import json

import pytest
import torch
import yaml

from gankit import config, precision
from gankit.experiment import Experiment
from gankit.train import Trainer
from gankit_testing import assert_user_error

IMAGES = ["data={name: noise_images, n: 32, channels: 1, resolution: 28}", "model.z_dim=8",
          "model.generator={name: dcgan, width: 8}", "model.discriminator={name: dcgan, width: 8}",
          "regularizers=[]", "train.batch_size=8", "eval.metrics=[]", "train.progress=false",
          "train.tensorboard=false", "train.snapshot_steps=[]", "train.device=cpu"]


@pytest.fixture
def measuring(monkeypatch, tmp_path):
    """auto measures here: no pinned precision, a CPU that has bf16, a private cache."""
    monkeypatch.delenv(precision.CPU_PRECISION_ENV, raising=False)
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "gankit" / "precision.json"


def fixed_timer(fp32_s: float, bf16_s: float, calls: list | None = None):
    def timer(step):
        step(False)  # the probe itself runs in both precisions
        step(True)
        if calls is not None:
            calls.append(1)
        return fp32_s, bf16_s
    return timer


def test_auto_resolves_without_measuring_where_the_answer_is_known(monkeypatch):
    monkeypatch.delenv(precision.CPU_PRECISION_ENV, raising=False)
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert precision.resolve_precision("auto", cpu, "toy") == torch.float32  # 0.01-std modes: never bf16
    assert precision.resolve_precision("auto", cuda, "toy") == torch.float32
    assert precision.resolve_precision("auto", cuda, "image") == torch.bfloat16
    assert precision.resolve_precision("auto", cpu, "image") is None  # measured
    assert precision.resolve_precision("bf16", cpu, "toy") == torch.bfloat16
    assert precision.resolve_precision("fp32", cuda, "image") == torch.float32
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert precision.resolve_precision("auto", cpu, "image") == torch.float32  # nothing to measure
    monkeypatch.setenv(precision.CPU_PRECISION_ENV, "bf16")
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert precision.resolve_precision("auto", cpu, "image") == torch.bfloat16


@pytest.mark.parametrize("times, expected", [((1.0, 0.5), torch.bfloat16), ((1.0, 0.95), torch.float32),
                                             ((1.0, 1.4), torch.float32)])
def test_bf16_is_chosen_only_when_clearly_faster_and_the_choice_is_cached(measuring, monkeypatch, times, expected):
    monkeypatch.setattr(precision, "time_pair", fixed_timer(*times))
    exp = Experiment(config.load(None, IMAGES))
    assert exp.compute_dtype == expected
    assert exp.cfg.train.precision == ("bf16" if expected == torch.bfloat16 else "fp32")
    (entry,) = json.loads(measuring.read_text()).values()
    assert entry["precision"] == exp.cfg.train.precision and entry["fp32_ms"] == 1000 * times[0]


def test_a_cached_choice_is_reused_and_keyed_by_threads_and_model(measuring, monkeypatch):
    calls: list = []
    monkeypatch.setattr(precision, "time_pair", fixed_timer(1.0, 0.5, calls))
    assert Experiment(config.load(None, IMAGES)).compute_dtype == torch.bfloat16
    monkeypatch.setattr(precision, "time_pair", fixed_timer(1.0, 2.0, calls))
    assert Experiment(config.load(None, IMAGES)).compute_dtype == torch.bfloat16  # from the cache
    assert len(calls) == 1
    assert Experiment(config.load(None, IMAGES + ["model.z_dim=9"])).compute_dtype == torch.float32  # another model
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        Experiment(config.load(None, IMAGES))
    finally:
        torch.set_num_threads(threads)
    assert len(calls) == 3 and len(json.loads(measuring.read_text())) == 3


def test_a_damaged_cache_is_measured_again_and_rewritten_whole(measuring, monkeypatch):
    measuring.parent.mkdir(parents=True)
    measuring.write_text('{"half a file": ')
    monkeypatch.setattr(precision, "time_pair", fixed_timer(1.0, 0.5))
    assert Experiment(config.load(None, IMAGES)).compute_dtype == torch.bfloat16
    assert len(json.loads(measuring.read_text())) == 1


def test_the_probe_leaves_the_runs_weights_buffers_and_random_streams_untouched(measuring):
    torch.manual_seed(0)
    reference = Experiment(config.load(None, IMAGES + ["train.precision=fp32"]))
    after_reference = torch.randn(4)
    torch.manual_seed(0)
    measured = Experiment(config.load(None, IMAGES))  # the real timer: both precisions, forward and backward
    assert torch.equal(torch.randn(4), after_reference)
    for name, net in reference.networks.items():
        theirs = measured.networks[name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, theirs[key]), (name, key)
        assert all(p.grad is None for p in measured.networks[name].parameters())
    (entry,) = json.loads(measuring.read_text()).values()
    assert entry["fp32_ms"] > 0 and entry["bf16_ms"] > 0


def test_the_run_records_the_choice_and_resume_keeps_it_on_another_machine(measuring, monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "time_pair", fixed_timer(1.0, 0.5))
    trainer = Trainer.start(config.load(None, IMAGES + ["train.steps=2"]), tmp_path / "run")
    trainer.fit()
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["precision"] == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)  # a CPU without bf16: auto would be fp32
    resumed = Trainer.resume(tmp_path / "run", ["train.steps=3"])
    assert resumed.exp.compute_dtype == torch.bfloat16


def test_a_bad_pinned_precision_is_one_line(cli, monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    monkeypatch.setenv(precision.CPU_PRECISION_ENV, "fp16")
    result = cli("train", "--out", str(tmp_path / "r"), *IMAGES, "train.steps=1")
    assert_user_error(result, "GANKIT_CPU_PRECISION", "fp16")
    assert not (tmp_path / "r").exists()
