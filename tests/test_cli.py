"""The `gankit` command end to end, and every user error path: one line on stderr, exit 2, nothing written."""
import json

import numpy as np
import pytest
import torch

from gankit_testing import FAST, assert_user_error, run_cli, run_cli_here


TINY = FAST + ["train.steps=20", "train.checkpoint_every=10"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = run_cli("train", "ring_gan_r1", *TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout)


def test_train_writes_a_complete_run(trained):
    out, results = trained
    assert {"modes", "high_quality", "reverse_kl"} <= set(results)
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "samples/strip.png", "loss.png"):
        assert (out / name).exists(), name
    assert "name: ring_gan_r1" in (out / "config.yaml").read_text()


def test_eval_prints_one_json_object_with_the_toy_metrics(trained):
    out, _ = trained
    result = run_cli("eval", str(out), "-n", "300")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["n_samples"] == 300 and values["step"] == 20
    assert {"modes", "high_quality", "reverse_kl"} <= set(values)


def test_sample_npz_and_png(trained, tmp_path):
    out, _ = trained
    assert run_cli("sample", str(out), "-n", "123", "--out", str(tmp_path / "s.npz")).returncode == 0
    assert np.load(tmp_path / "s.npz")["samples"].shape == (123, 2)
    assert run_cli("sample", str(out), "-n", "50", "--out", str(tmp_path / "s.png")).returncode == 0
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_to_more_steps(trained, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(trained[0], out)
    result = run_cli("train", "--resume", str(out), "train.steps=30")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["step"] == 30


def test_overrides_may_follow_options(tmp_path):
    out = tmp_path / "run"
    result = run_cli_here("train", "grid_gan", "--out", str(out), *TINY, "train.steps=3")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["step"] == 3 and json.loads(result.stdout)["n_modes"] == 25


def test_list_names_every_registry_and_config():
    result = run_cli_here("list")
    assert result.returncode == 0
    for word in ("losses:", "regularizers:", "models:", "datasets:", "configs:", "hinge", "rlc", "ring_wgan_gp"):
        assert word in result.stdout


@pytest.mark.parametrize("args,needles", [
    (["train", "nope"], ["unknown config 'nope'", "ring_gan_r1"]),
    (["train", "loss=nope"], ["unknown loss 'nope'", "hinge"]),
    (["train", "regularizers=[{name: r9}]"], ["unknown regularizer 'r9'", "dragan"]),
    (["train", "data=moons"], ["unknown dataset 'moons'", "grid", "ring"]),
    (["train", "model.generator.name=big"], ["unknown model 'big'"]),
    (["train", "train.stepz=3"], ["unknown config key train.stepz"]),
    (["train", "train.batch_size=x"], ["train.batch_size must be an integer"]),
    (["train", "optim.generator.lr=-0.1"], ["optim.generator.lr must be > 0"]),
    (["train", "train.n_critic=0"], ["train.n_critic must be >= 1"]),
    (["train", "train.g_updates=x"], ["train.g_updates"]),
    (["train", "train.batch_size=0"], ["train.batch_size must be >= 1"]),
    (["train", "train.device=cuda:7"] if not torch.cuda.is_available() else ["train", "train.device=tpu"],
     ["train.device"]),
    (["train", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["frobnicate"], ["invalid choice"]),
])
def test_train_errors_are_one_line_and_write_nothing(tmp_path, args, needles):
    out = tmp_path / "never"
    if args[0] == "train":  # the bad value comes last, so that no FAST override masks it
        result = run_cli_here("train", *FAST, "train.steps=2", *args[1:], "--out", str(out))
    else:
        result = run_cli_here(*args)
    assert_user_error(result, *needles)
    assert not out.exists()


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("loss: ns\ntrain:\n  steps: [3\n")
    result = run_cli_here("train", str(path), "--out", str(tmp_path / "out"))
    assert_user_error(result, "malformed YAML", "broken.yaml", "line")
    assert not (tmp_path / "out").exists()


def test_existing_run_is_not_overwritten(trained):
    out, _ = trained
    before = (out / "checkpoints" / "last.pt").read_bytes()
    assert_user_error(run_cli_here("train", *TINY, "--out", str(out)), "already holds a run", "--resume")
    assert (out / "checkpoints" / "last.pt").read_bytes() == before


@pytest.mark.parametrize("command", ["eval", "sample"])
def test_missing_run_directory(tmp_path, command):
    extra = ["--out", str(tmp_path / "x.npz")] if command == "sample" else []
    assert_user_error(run_cli_here(command, str(tmp_path / "nothing"), *extra), "does not exist")
    assert_user_error(run_cli_here("train", "--resume", str(tmp_path / "nothing")), "does not exist")


def test_directory_without_config_or_checkpoint(trained, tmp_path):
    assert_user_error(run_cli_here("eval", str(tmp_path)), "is not a gankit run", "config.yaml")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text((trained[0] / "config.yaml").read_text())
    assert_user_error(run_cli_here("eval", str(run)), "no checkpoint", "last.pt")


def test_corrupted_checkpoint_is_named_and_loading_runs_no_code(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated, as after a crash of a naive writer
    assert_user_error(run_cli_here("eval", str(run)), "checkpoint", "last.pt", "corrupted")
    assert_user_error(run_cli_here("train", "--resume", str(run)), "last.pt")

    # A pickle that would run code when unpickled is refused by weights_only loading.
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "gankit-checkpoint-1", "x": Evil()}, ckpt)
    result = run_cli_here("eval", str(run))
    assert_user_error(result, "last.pt")
    assert "pwned" not in result.stdout


def test_sample_errors_leave_no_file(trained, tmp_path):
    out, _ = trained
    assert_user_error(run_cli_here("sample", str(out), "--out", str(tmp_path / "s.txt")), "unsupported file type", ".npz")
    assert_user_error(run_cli_here("sample", str(out), "-n", "0", "--out", str(tmp_path / "s.npz")), "-n must be >= 1")
    assert_user_error(run_cli_here("eval", str(out), "-n", "1"), "-n must be >= 2")
    assert list(tmp_path.iterdir()) == []


def test_edited_config_that_no_longer_matches_the_checkpoint(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    text = (run / "config.yaml").read_text().replace("width: 64", "width: 32")
    (run / "config.yaml").write_text(text)
    assert_user_error(run_cli_here("eval", str(run)), "does not match")
