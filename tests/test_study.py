"""Many seeds at once (gankit study): the stacked model equals separate runs; the study's table and figures;
PacGAN packing and the maxout discriminator."""
import copy
import json
import math

import pytest
import torch

from gankit import config
from gankit.errors import ConfigError
from gankit.experiment import Experiment
from gankit.models.maxout import maxout
from gankit.models.mlp import mlp
from gankit.run import RunDir, load_checkpoint
from gankit.study.report import mean_se, run_study
from gankit.compat import stack_blocker
from gankit.study.seeds import train_seeds
from gankit.study.stack import SeedStack
from gankit.train import Trainer
from gankit_testing import FAST, assert_user_error, run_cli_here

SGD = ["optim.generator.name=sgd", "optim.discriminator.name=sgd", "optim.generator.lr=0.05",
       "optim.discriminator.lr=0.05"]
SMALL = [*FAST, "train.precision=fp32", "train.snapshot_steps=[4]", "train.checkpoint_every=1000"]


def weights(run_dir):
    nets = load_checkpoint(RunDir(run_dir).checkpoint)["networks"]
    return {f"{n}.{k}": v for n, sd in nets.items() for k, v in sd.items()}


def assert_same_weights(a, b, atol):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k].float(), wb[k].float(), atol=atol, rtol=0, msg=k)


def test_seed_stack_forward_equals_each_network():
    nets = []
    for s in range(3):
        torch.manual_seed(s)
        nets.append(mlp("generator", (2,), 8, batch_norm=True))
    copies = [copy.deepcopy(n) for n in nets]
    stack = SeedStack(nets)
    z = torch.randn(3 * 5, 8)
    expected = torch.cat([n(z[5 * i:5 * i + 5]) for i, n in enumerate(copies)])
    torch.testing.assert_close(stack(z), expected, atol=1e-5, rtol=0)
    # Batch-norm statistics are per seed, and so are the running averages.
    torch.testing.assert_close(stack.unstack(1)["norms.0.running_mean"], copies[1].norms[0].running_mean)
    assert stack.stacked["hidden__0__weight"].shape[0] == 3


@pytest.mark.parametrize("method", [
    ["loss=ns", "regularizers=[]", "train.n_critic=2"],
    ["loss=ns", "regularizers.0.name=r1", "regularizers.0.weight=1.0", "model.generator.batch_norm=true"],
    ["loss=wgan", "regularizers=[{name: clip}]", "model.pack=2"],
    ["loss=rpgan", "regularizers=[{name: r1, weight: 1.0}, {name: r2, weight: 1.0}]"],  # G's phase scores reals
    ["loss=ns", "regularizers=[]", "model.discriminator.spectral_norm=true"],  # per-seed power iterations
])
def test_stacked_seeds_equal_separate_runs(tmp_path, method):
    """SGD: the stacked weights equal separate runs to float tolerance (Adam would amplify rounding in the
    near-zero gradients of dead ReLUs into lr-sized steps; see the next test)."""
    overrides = [*SMALL, *SGD, *method, "train.steps=12"]
    results, info = train_seeds(config.load(None, overrides), [0, 1], tmp_path / "study")
    assert info["batched"]
    for seed in (0, 1):
        trainer = Trainer.start(config.load(None, [*overrides, f"train.seed={seed}"]), tmp_path / f"alone{seed}")
        alone = trainer.fit()
        assert_same_weights(tmp_path / "study" / f"seed_{seed}", tmp_path / f"alone{seed}", atol=2e-5)
        assert alone["modes"] == results[seed]["modes"]
        assert abs(alone["high_quality"] - results[seed]["high_quality"]) < 0.01
        # each seed's metrics.jsonl holds its own losses, as its own run would log them
        logged = [losses(tmp_path / "study" / f"seed_{seed}"), losses(tmp_path / f"alone{seed}")]
        assert logged[0].keys() == logged[1].keys() and logged[0]
        for step, record in logged[1].items():
            for key in ("d_loss", "g_loss"):
                assert logged[0][step][key] == pytest.approx(record[key], rel=1e-4, abs=1e-5), (step, key)


def losses(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records if "d_loss" in r}


def test_a_diverging_seed_stops_the_study_with_one_line_naming_config_and_seed(tmp_path):
    result = run_cli_here("study", "ring_gan", "--seeds", "2", "--out", str(tmp_path / "study"), *SMALL,
                     "train.steps=20", "train.log_every=5", "loss=wgan", "regularizers=[]",
                     "optim.discriminator={name: sgd, lr: 1.0e+30}", cwd=tmp_path)
    # the study's progress lines come first; the error is one line, the last, and no traceback
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("gankit: error:") and all(n in last for n in ("ring_gan", "seed 5678", "diverged")), last


def test_a_study_seed_honours_eval_every_and_checkpoint_every(tmp_path, monkeypatch):
    overrides = [*SMALL, "train.steps=8", "eval.every=4", "train.checkpoint_every=4", "train.log_every=2"]
    saved = []
    import gankit.study.seeds as seeds_mod
    import gankit.train as train_mod

    def spy(original):
        def save(path, state):
            if path.name == "last.pt":
                saved.append(state["step"])
            return original(path, state)
        return save

    for mod in (seeds_mod, train_mod):  # periodic checkpoints (the stack's) and the final ones (each seed's run)
        monkeypatch.setattr(mod, "save_checkpoint", spy(mod.save_checkpoint))
    train_seeds(config.load(None, overrides), [0, 1], tmp_path / "study")
    assert saved.count(4) == 2 and saved.count(8) == 2  # each seed at step 4 (periodic) and at the end
    records = [json.loads(line) for line in (tmp_path / "study" / "seed_1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval" in r] == [4, 8]
    assert [r["step"] for r in records if "d_loss" in r] == [2, 4, 6, 8]


def test_stacked_adam_matches_for_a_few_steps_and_seed_runs_resume(tmp_path):
    overrides = [*SMALL, "train.steps=3", "train.n_critic=2", "optim.lr_decay=linear", "train.ema.enabled=true",
                 "train.ema.decay=0.9"]
    train_seeds(config.load(None, overrides), [3, 4], tmp_path / "study")
    Trainer.start(config.load(None, [*overrides, "train.seed=4"]), tmp_path / "alone").fit()
    assert_same_weights(tmp_path / "study" / "seed_4", tmp_path / "alone", atol=1e-5)
    # A seed's directory is an ordinary run: it resumes (optimiser, schedule, EMA and RNG state included).
    state = load_checkpoint(RunDir(tmp_path / "study" / "seed_4").checkpoint)
    assert state["optimizers"]["generator"]["state"][0]["exp_avg"].shape == \
        load_checkpoint(RunDir(tmp_path / "alone").checkpoint)["optimizers"]["generator"]["state"][0]["exp_avg"].shape
    Trainer.resume(tmp_path / "study" / "seed_4", ["train.steps=5"]).fit()
    Trainer.resume(tmp_path / "alone", ["train.steps=5"]).fit()
    assert_same_weights(tmp_path / "study" / "seed_4", tmp_path / "alone", atol=1e-4)


def test_unstackable_configs_train_one_seed_after_another(tmp_path):
    overrides = [*SMALL, "train.steps=4", "regularizers=[{name: rlc}]"]
    cfg = config.load(None, overrides)
    assert "rlc" in stack_blocker(Experiment(cfg))
    results, info = train_seeds(cfg, [0, 1], tmp_path / "study")
    assert not info["batched"] and len(results) == 2
    Trainer.start(config.load(None, [*overrides, "train.seed=1"]), tmp_path / "alone").fit()
    assert_same_weights(tmp_path / "study" / "seed_1", tmp_path / "alone", atol=0)


def test_mean_and_standard_error():
    assert mean_se([1.0, 2.0, 3.0, 6.0]) == {"mean": 3.0, "se": pytest.approx(math.sqrt(14 / 3) / 2)}
    assert mean_se([5.0]) == {"mean": 5.0, "se": 0.0}


def test_study_of_the_main_job(tmp_path):
    study = run_study(["main"], 2, tmp_path / "s", [*SMALL, "train.steps=3"])
    assert study["main"]["batched"] and study["main"]["seeds"] == [0, 1]
    assert (tmp_path / "s" / "main" / "seed_1" / "eval.json").exists()


def test_study_command_writes_table_results_and_figures(tmp_path):
    out = tmp_path / "s"
    r = run_cli_here("study", "ring_gan", "ring_gan_r1", "--seeds", "2", "--out", str(out), *SMALL, "train.steps=8")
    assert r.returncode == 0, r.stderr
    assert "| ring_gan | 2 | 8 |" in r.stdout and "| ring_gan_r1 | 2 | 8 |" in r.stdout
    results = json.loads((out / "results.json").read_text())
    final = results["ring_gan_r1"]["final"]["high_quality"]
    assert results["ring_gan_r1"]["seeds"] == [5678, 5679]  # train.seed of the config, then + 1
    values = [json.loads((out / "ring_gan_r1" / f"seed_{s}" / "eval.json").read_text())["high_quality"]
              for s in (5678, 5679)]
    assert final["values"] == values and final["mean"] == pytest.approx(sum(values) / 2)
    assert set(results["ring_gan"]["curves"]) == {"4", "8"}
    assert len(results["ring_gan"]["curves"]["4"]["modes"]) == 2
    for name in ("table.md", "curves.png", "samples.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "ring_gan" / "seed_5679" / "samples" / "strip.png").exists()


@pytest.mark.parametrize("args,needle", [
    (["--seeds", "0"], "--seeds"),
    (["no_such_config"], "no_such_config"),
    (["ring_gan", "ring_gan"], "once"),
    (["ring_gan", "train.nope=1"], "train.nope"),
    ([], "CONFIG"),
])
def test_study_errors_are_one_line(tmp_path, args, needle):
    if args and args[0] == "--seeds":
        args = ["ring_gan", *args]
    assert_user_error(run_cli_here("study", *args, "--out", str(tmp_path / "s")), needle)


def test_study_out_must_not_be_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    assert_user_error(run_cli_here("study", "ring_gan", "--seeds", "1", "--out", str(tmp_path / "f"), *SMALL), "--out")


def test_study_out_must_not_be_a_single_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: ring_gan\n")
    before = sorted(p.name for p in run.iterdir())
    assert_user_error(run_cli_here("study", "ring_gan", "--seeds", "1", "--out", str(run), *SMALL), "single run")
    assert sorted(p.name for p in run.iterdir()) == before  # nothing trained into it


# -- PacGAN packing and the maxout discriminator ---------------------------------------------------------------

def test_packing_feeds_d_m_samples_as_one_input():
    exp = Experiment(config.load(None, [*SMALL, "model.pack=2"]))
    inner = exp.discriminator.inner
    assert inner.hidden[0].in_features == 2 * 2  # twice the features of one 2-D sample
    x = torch.randn(6, 2)
    torch.testing.assert_close(exp.discriminator(x), inner(x.reshape(3, 4)))
    assert exp.discriminator(x).shape == (3,)
    torch.testing.assert_close(x.reshape(3, 4)[1], torch.cat([x[2], x[3]]))  # pack k: samples 2k and 2k+1


def test_packing_images_joins_channels():
    from gankit.models.packing import PackedDiscriminator

    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x, y=None):
            seen["x"] = x
            return x.flatten(1).sum(1)

    x = torch.randn(4, 3, 8, 8)
    PackedDiscriminator(Probe(), 2)(x)
    assert seen["x"].shape == (2, 6, 8, 8)
    torch.testing.assert_close(seen["x"][1, 3:], x[3])


@pytest.mark.parametrize("overrides,needle", [
    (["model.pack=3"], "multiple of model.pack"),
    (["model.pack=0"], "model.pack"),
    (["model.pack=2", "model.conditional=true"], "model.conditional"),
])
def test_packing_errors(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        Experiment(config.load(None, [*SMALL, *overrides]))


def test_maxout_is_the_max_over_pieces():
    d = maxout("discriminator", (2,), 8, width=3, depth=1, pieces=4, init_std=0.02)
    x = torch.randn(5, 2)
    pre = d.hidden[0].linear(x).view(5, 3, 4)
    torch.testing.assert_close(d.hidden[0](x), pre.max(dim=2).values)
    assert d.hidden[0].linear.weight.std().item() == pytest.approx(0.02, rel=0.3)
    assert float(d.hidden[0].linear.bias.detach().abs().max()) == 0.0
    assert d(x).shape == (5,)


def test_gankit_train_without_a_config_runs_the_main_job(tmp_path):
    out = tmp_path / "run"
    r = run_cli_here("train", *SMALL, "train.steps=3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    saved = config.load(str(out / "config.yaml"))
    assert saved.name == "main" and saved == config.load("main", [*SMALL, "train.steps=3"])
    assert saved.optim.lr_decay == "linear" and saved.regularizers[0]["weight"] == 0.1


@pytest.mark.parametrize("overrides,needle", [
    (["regularizers=[{name: gp, alpha: sometimes}]"], "regularizers.0.alpha"),
    (["data.balanced=maybe"], "data.balanced"),
    (["model.discriminator={name: maxout, pieces: 0}"], "model.discriminator.pieces"),
    (["model.generator.init_std=-1"], "model.generator.init_std"),
])
def test_new_options_reject_garbage_naming_the_key(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        config.load(None, overrides)


# -- studies that survive time: kill -9 and rerun, more seeds, a changed config ------------------------------------
GP = [*SMALL, "loss=wgan", "regularizers=[{name: gp, weight: 0.1}]"]  # gp draws from the stack's shared stream


def test_a_study_killed_with_sigkill_and_rerun_ends_as_an_uninterrupted_one(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["study", "ring_gan", "--seeds", "2", *GP, "train.n_critic=1", "train.steps=300", "train.checkpoint_every=10",
            "train.snapshot_steps=[50,200]"]
    assert run_cli_here(*args, "--out", str(tmp_path / "whole")).returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "gankit", *args, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    checkpoint = killed / "ring_gan" / "seed_5679" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "ring_gan" / "seed_5679" / "eval.json").exists()  # stopped mid-training
    stopped_at = load_checkpoint(checkpoint)["step"]
    assert 10 <= stopped_at < 300
    rerun = run_cli_here(*args, "--out", str(killed))
    assert rerun.returncode == 0, rerun.stderr
    for seed in (5678, 5679):
        assert_same_weights(killed / "ring_gan" / f"seed_{seed}", tmp_path / "whole" / "ring_gan" / f"seed_{seed}",
                            atol=0)
        logged = [losses(d / "ring_gan" / f"seed_{seed}") for d in (killed, tmp_path / "whole")]
        assert {k: (r["d_loss"], r["g_loss"]) for k, r in logged[0].items()} == \
            {k: (r["d_loss"], r["g_loss"]) for k, r in logged[1].items()}
    a, b = (json.loads((d / "results.json").read_text())["ring_gan"] for d in (tmp_path / "whole", killed))
    assert a["final"] == b["final"] and a["curves"] == b["curves"] and set(a["curves"]) == {"50", "200", "300"}


def test_more_seeds_train_only_the_new_ones_and_a_finished_study_trains_nothing(tmp_path):
    over = [*SMALL, *SGD, "train.steps=6"]
    cfg = config.load(None, over)
    train_seeds(cfg, [0, 1], tmp_path / "study")
    first = RunDir(tmp_path / "study" / "seed_0").checkpoint.stat().st_mtime_ns
    results, info = train_seeds(cfg, [0, 1, 2], tmp_path / "study")
    assert info["trained"] == [2] and len(results) == 3
    assert RunDir(tmp_path / "study" / "seed_0").checkpoint.stat().st_mtime_ns == first  # not touched
    assert results[0] == json.loads((tmp_path / "study" / "seed_0" / "eval.json").read_text())
    Trainer.start(config.load(None, [*over, "train.seed=2"]), tmp_path / "alone").fit()
    assert_same_weights(tmp_path / "study" / "seed_2", tmp_path / "alone", atol=2e-5)
    assert train_seeds(cfg, [0, 1, 2], tmp_path / "study")[1]["trained"] == []


def test_seeds_stopped_at_different_steps_resume_in_groups(tmp_path):
    """Seed 0 stopped at step 4 (its checkpoint), seed 1 new: each continues from where it is, and both end as
    uninterrupted runs."""
    over = [*SMALL, *SGD, "train.steps=8", "train.checkpoint_every=4"]
    Trainer.start(config.load(None, [*over, "train.steps=4"]), tmp_path / "study" / "seed_0").fit()
    cfg_dump = tmp_path / "study" / "seed_0" / "config.yaml"
    from gankit.run import dump_config

    dump_config(cfg_dump, config.load(None, [*over, "train.seed=0"]))  # as a study that was stopped at step 4
    (tmp_path / "study" / "seed_0" / "eval.json").unlink()
    results, info = train_seeds(config.load(None, over), [0, 1], tmp_path / "study")
    assert info["trained"] == [0, 1]
    for seed in (0, 1):
        Trainer.start(config.load(None, [*over, f"train.seed={seed}"]), tmp_path / f"alone{seed}").fit()
        assert_same_weights(tmp_path / "study" / f"seed_{seed}", tmp_path / f"alone{seed}", atol=2e-5)


def test_a_study_rerun_with_another_config_is_one_line(tmp_path):
    out = str(tmp_path / "s")
    assert run_cli_here("study", "ring_gan", "--seeds", "1", "--out", out, *SMALL, "train.steps=4").returncode == 0
    assert_user_error(run_cli_here("study", "ring_gan", "--seeds", "1", "--out", out, *SMALL, "train.steps=6"),
                      "train.steps=4", "6", "another --out")


def test_a_study_stopped_between_two_seeds_checkpoints_still_resumes_exactly(tmp_path, monkeypatch):
    """The stack's one-file checkpoint (stack.pt) comes before the seeds' own: a stop after seed 0's file and
    before seed 1's (the seeds' files then disagree by one interval) continues exactly."""
    import gankit.study.seeds as seeds_mod

    over = [*GP, "train.steps=30", "train.checkpoint_every=10", "train.snapshot_steps=[15]"]
    train_seeds(config.load(None, over), [0, 1], tmp_path / "whole")
    original, calls = seeds_mod.save_checkpoint, []

    def stop_at_seed_1_of_step_20(path, state):
        calls.append(state["step"])
        if state["step"] == 20 and "seed_1" in str(path):
            raise KeyboardInterrupt
        original(path, state)

    monkeypatch.setattr(seeds_mod, "save_checkpoint", stop_at_seed_1_of_step_20)
    with pytest.raises(KeyboardInterrupt):
        train_seeds(config.load(None, over), [0, 1], tmp_path / "cut")
    monkeypatch.setattr(seeds_mod, "save_checkpoint", original)
    steps = [load_checkpoint(RunDir(tmp_path / "cut" / f"seed_{s}").checkpoint)["step"] for s in (0, 1)]
    assert steps == [20, 10]
    train_seeds(config.load(None, over), [0, 1], tmp_path / "cut")
    for seed in (0, 1):
        assert_same_weights(tmp_path / "cut" / f"seed_{seed}", tmp_path / "whole" / f"seed_{seed}", atol=0)
