"""The training loop: resume equivalence, divergence handling, lazy regularizers, EMA, and real learning."""
import json

import pytest
import torch

from gankit import config
from gankit.errors import GankitError, TrainingDiverged
from gankit.run import RunDir, load_checkpoint
from gankit.train import Trainer
from gankit_testing import FAST, full_and_resumed


def start(tmp_path, *overrides, name="run"):
    cfg = config.load(None, FAST + list(overrides))
    return Trainer.start(cfg, tmp_path / name)


def parameters(trainer):
    """Every network's weights and buffers (G, D and the extra networks of objective terms)."""
    return {f"{who}.{k}": v.clone() for who, model in trainer.exp.networks.items()
            for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", [
    [],
    ["loss=wgan", "regularizers=[{name: gp, weight: 10}]", "augment=[{name: noise, sigma: 0.1, anneal_steps: 20}]",
     "train.n_critic=2", "train.ema.enabled=true", "train.ema.decay=0.9", "optim.lr_decay=linear"],
    ["regularizers=[{name: rlc, weight: 0.1}, {name: r1, weight: 1, every: 3}]",
     "model.discriminator.spectral_norm=true", "optim.generator={name: rmsprop, lr: 0.001}"],
    # Conditional, with an extra network (a separate ACGAN classifier with its own optimiser), uniform z, the
    # data's class frequencies, D's fakes with the real classes, and R1 scoring with labels.
    ["model.conditional=true", "model.z_dist=uniform", "model.class_dist=data", "train.d_fake_classes=real",
     "model.discriminator.condition=projection", "model.generator.condition=cbn", "model.generator.batch_norm=true",
     "terms=[{name: aux_class, classifier: clf, variant: paper}]",
     "model.networks={clf: {name: mlp, width: 32, depth: 1, class_head: true, condition: none}}",
     "optim.networks={clf: {name: adam, lr: 0.002}}", "optim.lr_decay=linear"],
    # RpGAN (G's phase scores a real batch) + R1 + R2, with schedules of lr, Adam's beta2 and R1's weight.
    ["loss=rpgan", "regularizers=[{name: r1, weight: 1}, {name: r2, weight: 1}]",
     "schedules=[{name: cosine, key: optim.generator.lr, start: 0.002, end: 0.0005},"
     " {name: linear, key: optim.discriminator.betas.1, start: 0.9, end: 0.99, steps: 20},"
     " {name: cosine, key: regularizers.0.weight, start: 1.0, end: 0.1}]"],
    # Simultaneous updates (PacGAN's schedule) with batch norm in G, R1 and an LR decay.
    ["train.updates=simultaneous", "model.generator.batch_norm=true", "optim.lr_decay=linear"],
])
def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path, method):
    steps = ["train.steps=30", "train.checkpoint_every=15"]
    # killed right after its first checkpoint, then resumed
    full, resumed, resumed_at = full_and_resumed(lambda name: start(tmp_path, *steps, *method, name=name))
    assert resumed_at == 15
    a, b = parameters(full), parameters(resumed)
    assert a.keys() == b.keys() and {k.split(".")[0] for k in a} == set(full.exp.networks)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    if full.exp.ema is not None:
        for x, y in zip(full.exp.ema.model.parameters(), resumed.exp.ema.model.parameters()):
            assert torch.equal(x, y)
    # metrics.jsonl of the resumed run has one record per logging step, none repeated.
    steps = [r["step"] for r in map(json.loads, (tmp_path / "part" / "metrics.jsonl").read_text().splitlines())
             if "eval" not in r]
    assert steps == sorted(set(steps)) and steps[-1] == 30


def test_divergence_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = start(tmp_path, "train.steps=200", "train.checkpoint_every=10", "train.log_every=5")
    g_step = trainer.g_step

    def poisoned_g_step(*latents):
        if trainer.step == 16:  # the 17th G step produces NaN weights
            with torch.no_grad():
                next(trainer.exp.generator.parameters()).fill_(float("nan"))
        return g_step(*latents)

    trainer.g_step = poisoned_g_step
    with pytest.raises(TrainingDiverged, match=r"NaN or infinite at step 17; the last good checkpoint is .*last\.pt"):
        trainer.fit()
    state = load_checkpoint(RunDir(tmp_path / "run").checkpoint)
    assert state["step"] == 10
    assert all(torch.isfinite(v).all() for v in state["networks"]["generator"].values())


def test_divergence_from_a_too_large_learning_rate_is_caught(tmp_path):
    trainer = start(tmp_path, "train.steps=200", "optim.generator={name: sgd, lr: 1.0e+30}",
                    "optim.discriminator={name: sgd, lr: 1.0e+30}", "regularizers=[]", "loss=wgan")
    with pytest.raises(TrainingDiverged, match=r"at step \d+; no checkpoint had been saved yet"):
        trainer.fit()


def test_lazy_regularizer_runs_every_k_d_steps_with_weight_times_k(tmp_path, monkeypatch):
    trainer = start(tmp_path, "train.steps=1", "regularizers=[{name: r1, weight: 2.0, every: 3}]")
    seen = []
    original = trainer.exp.regularizers[0].penalty

    def spy(ctx):
        value = original(ctx)
        seen.append(value)
        return value

    monkeypatch.setattr(trainer.exp.regularizers[0], "penalty", spy)
    due = [bool(trainer.d_step(i).get("r1") is not None) for i in range(7)]
    assert due == [True, False, False, True, False, False, True] and len(seen) == 3


def test_separate_lazy_regularization_is_a_step_of_its_own_with_scaled_lr_and_betas(tmp_path):
    """stylegan2-ada's Dreg phase: on due steps D takes a second optimiser step on the penalty alone, and D's lr and
    Adam betas are scaled by k / (k + 1)."""
    trainer = start(tmp_path, "train.steps=1", "train.lazy_regularization=separate",
                    "regularizers=[{name: r1, weight: 2.0, every: 4}, {name: r2, weight: 1.0, every: 4}]",
                    "optim.discriminator={name: adam, lr: 0.001, betas: [0.5, 0.9]}")
    group = trainer.exp.opt_d.param_groups[0]
    assert group["lr"] == pytest.approx(0.001 * 4 / 5)
    assert group["betas"] == pytest.approx((0.5 ** 0.8, 0.9 ** 0.8))
    assert trainer.exp.opt_g.param_groups[0]["lr"] == pytest.approx(0.001)  # G has no lazy phase
    steps = []
    original = trainer._step

    def spy(player, loss):
        steps.append((player, loss.requires_grad))
        return original(player, loss)

    trainer._step = spy
    terms = [trainer.d_step(i) for i in range(8)]
    assert len(steps) == 8 + 2  # a penalty step after D steps 0 and 4
    assert [("r1" in t, "r2" in t) for t in terms] == [(True, True)] + [(False, False)] * 3 + [(True, True)] + \
        [(False, False)] * 3


@pytest.mark.parametrize("overrides,needle", [
    (["regularizers=[{name: rlc, every: 2}]"], "cannot run in a separate lazy step"),
    (["regularizers=[{name: r1, every: 2}, {name: r2, every: 4}]"], "one interval"),
    (["regularizers=[{name: r1}]"], "no regularizer is lazy"),
    (["train.lazy_regularization=sometimes"], "train.lazy_regularization"),
])
def test_separate_lazy_regularization_errors(tmp_path, overrides, needle):
    from gankit.errors import ConfigError

    with pytest.raises(ConfigError, match=needle):
        start(tmp_path, "train.lazy_regularization=separate", *overrides)


def test_ema_follows_the_formula(tmp_path):
    trainer = start(tmp_path, "train.ema.enabled=true", "train.ema.decay=0.75")
    ema = trainer.exp.ema
    before = [p.clone() for p in ema.model.parameters()]
    trainer.d_step(0)
    trainer.g_step()
    for avg, old, new in zip(ema.model.parameters(), before, trainer.exp.generator.parameters()):
        torch.testing.assert_close(avg, 0.75 * old + 0.25 * new)
    assert trainer.exp.sampler is ema.model


def test_linear_lr_decay_reaches_zero(tmp_path):
    trainer = start(tmp_path, "train.steps=20", "optim.lr_decay=linear")
    trainer.fit()
    assert trainer.exp.opt_g.param_groups[0]["lr"] == pytest.approx(0.0)


def test_run_directory_contents(tmp_path):
    trainer = start(tmp_path, "train.steps=12", "train.tensorboard=true")
    results = trainer.fit()
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "samples/step_000005.npz",
                 "samples/step_000012.npz", "samples/strip.png", "loss.png", "eval.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((run / "eval.json").read_text()) == results
    assert set(results) >= {"modes", "high_quality", "reverse_kl", "n_samples", "step", "weights"}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("step" in r for r in records) and "d_loss" in records[0] and "r1" in records[0]
    assert config.read_yaml(run / "config.yaml")["train"]["steps"] == 12


def test_start_refuses_a_directory_that_holds_a_run(tmp_path):
    start(tmp_path, "train.steps=2").fit()
    with pytest.raises(GankitError, match="already holds a run"):
        start(tmp_path)


def test_same_seed_same_result_other_seed_other_result(tmp_path):
    a = start(tmp_path, "train.steps=5", name="a")
    a.fit()
    b = start(tmp_path, "train.steps=5", name="b")
    b.fit()
    c = start(tmp_path, "train.steps=5", "train.seed=1", name="c")
    c.fit()
    pa, pb, pc = parameters(a), parameters(b), parameters(c)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa)


def test_gan_r1_on_the_ring_covers_at_least_6_of_8_modes(tmp_path):
    """Real learning: the reference recipe (NS-GAN + R1, gamma 1) from noise to the ring in 1,500 G steps."""
    cfg = config.load(None, ["train.steps=1500", "train.progress=false", "train.tensorboard=false",
                             "train.log_every=500", "model.generator.width=128", "model.discriminator.width=128",
                             "train.seed=0"])
    results = Trainer.start(cfg, tmp_path / "run").fit()
    assert results["modes"] >= 6, results
    assert results["reverse_kl"] < 0.2, results


def test_periodic_evaluation_keeps_the_best_checkpoint(tmp_path):
    trainer = start(tmp_path, "train.steps=20", "eval.every=5", "eval.best=reverse_kl")
    results = trainer.fit()
    run = RunDir(tmp_path / "run")
    evals = [json.loads(line) for line in run.metrics.read_text().splitlines() if '"eval"' in line]
    assert [r["step"] for r in evals] == [5, 10, 15, 20]
    best = min(evals, key=lambda r: r["eval"]["reverse_kl"])
    assert results["best"] == {"metric": "reverse_kl", "value": best["eval"]["reverse_kl"], "step": best["step"]}
    assert load_checkpoint(run.best_checkpoint)["step"] == best["step"]
    # The best value travels in last.pt, so a resumed run keeps comparing against it.
    assert load_checkpoint(run.checkpoint)["best"] == results["best"]


def test_periodic_evaluation_does_not_change_training(tmp_path):
    plain = start(tmp_path, "train.steps=12", name="plain")
    plain.fit()
    evaluated = start(tmp_path, "train.steps=12", "eval.every=4", "eval.best=modes", name="evaluated")
    evaluated.fit()
    a, b = parameters(plain), parameters(evaluated)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("overrides,message", [
    (["eval.best=fid"], "eval.best 'fid' must be one of modes, high_quality, reverse_kl"),
    (["eval.metrics=[fid]"], "eval.metrics: metrics fid are for image runs"),
])
def test_bad_eval_settings_are_refused_before_anything_is_written(tmp_path, overrides, message):
    with pytest.raises(GankitError, match=message.replace("[", r"\[")):
        start(tmp_path, *overrides)
    assert not (tmp_path / "run").exists()


def test_outputs_get_normal_file_permissions(tmp_path):
    import os
    import stat

    start(tmp_path, "train.steps=3").fit()
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.yaml", "eval.json", "checkpoints/last.pt", "samples/strip.png", "loss.png"):
        mode = stat.S_IMODE((tmp_path / "run" / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))


def test_critic_real_batch_per_g_step_shares_one_real_batch_across_the_critic_steps(tmp_path):
    """per_g_step: the n_critic D steps of a G step see the same real batch (one draw per G step); fresh draws one
    per D step. A resume starts at a G step's first D step, so it draws what the uninterrupted run draws."""
    seen = {}
    for mode in ("fresh", "per_g_step"):
        trainer = Trainer.start(config.load(None, [*FAST, "train.n_critic=3", f"train.critic_real_batch={mode}",
                                                   "train.steps=2"]), tmp_path / mode)
        draws, reals = [], []
        sample = trainer.exp.data.sample
        trainer.exp.data.sample = lambda n: draws.append(n) or sample(n)
        critic = trainer._critic_pair
        trainer._critic_pair = lambda real, *rest: reals.append(real.clone()) or critic(real, *rest)
        for _ in range(2):
            trainer.train_step()
        seen[mode] = (len(draws), reals)
    assert seen["fresh"][0] == 6 and seen["per_g_step"][0] == 2
    per_step = seen["per_g_step"][1]
    assert all(torch.equal(per_step[0], r) for r in per_step[1:3]) and not torch.equal(per_step[0], per_step[3])
    assert not torch.equal(seen["fresh"][1][0], seen["fresh"][1][1])
    # resume equivalence: 4 steps straight equal 2 + 2 resumed
    overrides = [*FAST, "train.n_critic=3", "train.critic_real_batch=per_g_step", "train.precision=fp32"]
    Trainer.start(config.load(None, [*overrides, "train.steps=4"]), tmp_path / "straight").fit()
    Trainer.start(config.load(None, [*overrides, "train.steps=2"]), tmp_path / "half").fit()
    Trainer.resume(tmp_path / "half", ["train.steps=4"]).fit()
    a, b = (load_checkpoint(RunDir(tmp_path / d).checkpoint)["networks"] for d in ("straight", "half"))
    for net in a:
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)


def test_critic_real_batch_garbage_is_one_line(cli):
    from gankit_testing import assert_user_error

    assert_user_error(cli("train", "ring_gan", "train.steps=1", "train.critic_real_batch=sometimes"),
                      "train.critic_real_batch")


def test_g_updates_are_that_many_g_updates_on_one_draw_of_latents(tmp_path):
    """train.g_updates=2 (carpedm20's "run g_optim twice"): one G step is n_critic D steps, then two G updates on
    the same z, exactly as two calls of g_step with one draw of the prior; the LR schedule counts G steps."""
    twice = start(tmp_path, "train.g_updates=2", "train.n_critic=2", "optim.lr_decay=linear", "train.steps=4",
                  name="twice")
    for _ in range(3):
        twice.train_step()
    # started after the first has trained: both draw from torch's global RNG, seeded by Trainer.start
    by_hand = start(tmp_path, "train.n_critic=2", "optim.lr_decay=linear", "train.steps=4", name="by_hand")
    for _ in range(3):
        by_hand.d_phase(0), by_hand.d_phase(1)
        latents = by_hand.exp.prior.sample(by_hand.g_batch_size, by_hand.exp.device)
        by_hand.g_step(latents), by_hand.g_step(latents)
        for sched in by_hand.exp.schedulers.values():
            sched.step()
        by_hand.step += 1
    a, b = parameters(twice), parameters(by_hand)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert twice.step == 3
    g_state = next(iter(twice.exp.opt_g.state.values()))
    d_state = next(iter(twice.exp.opt_d.state.values()))
    assert int(g_state["step"]) == 6 and int(d_state["step"]) == 6  # 3 G steps x 2 updates; 3 x n_critic 2
    # the linear decay to 0 over 4 G steps is at 1/4 of the rate after 3 G steps (not after 6 updates)
    assert twice.exp.opt_g.param_groups[0]["lr"] == pytest.approx(by_hand.exp.opt_g.param_groups[0]["lr"])
    assert twice.exp.opt_g.param_groups[0]["lr"] == pytest.approx(0.25 * twice.cfg.optim.generator["lr"])


def test_g_updates_differ_from_one_update(tmp_path):
    """The second G update moves G: two updates per G step are not one."""
    once = start(tmp_path, "train.steps=3", name="once")
    twice = start(tmp_path, "train.steps=3", "train.g_updates=2", name="twice")
    once.fit(), twice.fit()
    a, b = parameters(once), parameters(twice)
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("generator."))


def test_simultaneous_updates_take_both_gradients_at_the_same_weights(tmp_path):
    """train.updates=simultaneous (PacGAN's and ALI's one GradientDescent over both losses): from the same weights
    and draws, D moves exactly as in the alternating schedule's D step, and G moves along the gradient of its loss
    at D's weights *before* that step (by hand here, with SGD so the update is lr * gradient)."""
    import copy

    import torch.nn.functional as F

    sgd = ["optim.generator={name: sgd, lr: 0.1}", "optim.discriminator={name: sgd, lr: 0.1}", "regularizers=[]",
           "schedules=[]", "loss=ns", "train.precision=fp32", "train.steps=3"]
    sim = start(tmp_path, *sgd, "train.updates=simultaneous", name="sim")
    alt = start(tmp_path, *sgd, name="alt")
    G0, D0 = copy.deepcopy(sim.exp.generator), copy.deepcopy(sim.exp.discriminator)
    rng = torch.get_rng_state()
    sim.train_step()
    torch.set_rng_state(rng)
    real = sim.exp.data.sample(sim.batch_size).x
    z = sim.exp.prior.sample(sim.batch_size, sim.exp.device).z
    fake_logit = D0(G0(z))
    g_loss = F.softplus(-fake_logit).mean()  # ns: -log sigmoid(D(G(z)))
    grads = torch.autograd.grad(g_loss, list(G0.parameters()))
    for (name, p), p0, g in zip(sim.exp.generator.named_parameters(), G0.parameters(), grads):
        torch.testing.assert_close(p, p0 - 0.1 * g, rtol=1e-5, atol=1e-6, msg=name)
    torch.set_rng_state(rng)
    alt.train_step()
    for (name, a), b in zip(alt.exp.discriminator.named_parameters(), sim.exp.discriminator.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)  # the same D step
    assert any(not torch.equal(a, b) for a, b in zip(alt.exp.generator.parameters(),
                                                     sim.exp.generator.parameters()))  # G saw the updated D there
    assert sim.step == 1 and {"d_loss", "g_loss"} <= set(sim.train_step()[0]) | set(sim.train_step()[1])


@pytest.mark.parametrize("overrides, needle", [
    (["train.n_critic=2"], "train.n_critic is 2"),
    (["train.g_updates=2"], "train.g_updates is 2"),
    (["train.g_batch_size=32"], "train.g_batch_size"),
    (["regularizers=[{name: r1, every: 4}]", "train.lazy_regularization=separate"], "lazy_regularization"),
    (["train.updates=sometimes"], "train.updates"),
])
def test_simultaneous_updates_errors(tmp_path, overrides, needle):
    from gankit.errors import ConfigError

    with pytest.raises(ConfigError, match=needle):
        start(tmp_path, "train.updates=simultaneous", *overrides)


def test_simultaneous_updates_refuse_veegan_in_one_line(cli):
    from gankit_testing import assert_user_error

    assert_user_error(cli("train", "ring_veegan", "train.steps=1", "train.n_critic=1", "train.updates=simultaneous"),
                      "VEEGAN")


def test_pacgan_configs_follow_the_reference_code_and_train(tmp_path):
    """fjxmlzn/PacGAN synthetic_data_experiments: one GradientDescent over D's and G's losses (simultaneous
    updates), Adam 1e-4 with beta1 0.8 for both, 100 packs per batch, z 2."""
    for data in ("ring", "grid"):
        for pack, name in enumerate(("gan", "pacgan2", "pacgan3", "pacgan4"), start=1):
            cfg = config.load(f"pacgan_{data}_{name}")
            t, m = cfg.train, cfg.model
            assert (t.updates, t.n_critic, t.g_updates, t.batch_size, m.pack, m.z_dim) == (
                "simultaneous", 1, 1, 100 * pack, pack, 2)
            for opt in (cfg.optim.generator, cfg.optim.discriminator):
                assert (opt["name"], opt["lr"], list(opt["betas"])) == ("adam", 1e-4, [0.8, 0.999])
    trainer = Trainer.start(config.load("pacgan_ring_pacgan2", ["train.steps=2", "train.progress=false",
                                                               "train.tensorboard=false", "train.snapshot_steps=[]",
                                                               "eval.n_samples=200"]), tmp_path / "run")
    assert trainer.fit()["step"] == 2
