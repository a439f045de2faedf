"""Augmentations of D's inputs: DiffAugment per sample and differentiable, applied to real and generated samples in
both phases through the one D call; the adaptive probability (ADA heuristic); instance noise; schedules."""
import math

import pytest
import torch

from gankit import config
from gankit.augment.diffaugment import color, cutout, translate
from gankit.errors import ConfigError
from gankit.registry import AUGMENTATIONS, load_builtins
from gankit.schedules import Schedule
from gankit.train import Trainer
from gankit_testing import FAST, assert_user_error, full_and_resumed, run_cli_here

load_builtins()
IMAGES = ["data={name: noise_images, n: 64, channels: 3, resolution: 28}", "model.z_dim=8", "eval.metrics=[]",
          "model.generator={name: dcgan, width: 8}", "model.discriminator={name: dcgan, width: 8}",
          "regularizers=[]", "train.batch_size=8", "eval.n_samples=16", "eval.grid_size=4", "train.progress=false",
          "train.tensorboard=false", "train.snapshot_steps=[]", "train.precision=fp32"]


def aug(**kw):
    return AUGMENTATIONS.build({"name": "diffaugment", **kw}, "augment.0")


def test_translation_moves_each_image_by_its_own_whole_pixel_shift_and_fills_zeros():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8) + 1  # no zeros in the images: a zero can only come from the padding
    out = translate(x, 0.25)
    for i in range(len(x)):
        # find the shift that maps image i onto out[i] on the pixels it covers
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = torch.zeros_like(x[i])
                ys, xs = slice(max(dy, 0), 8 + min(dy, 0)), slice(max(dx, 0), 8 + min(dx, 0))
                yt, xt = slice(max(-dy, 0), 8 + min(-dy, 0)), slice(max(-dx, 0), 8 + min(-dx, 0))
                shifted[:, ys, xs] = x[i][:, yt, xt]
                matches.append(torch.equal(shifted, out[i]))
        assert sum(matches) == 1
    shifts = {int((out[i] == 0).sum()) for i in range(len(x))}
    assert len(shifts) > 3  # per sample: different images are shifted differently


def test_cutout_zeroes_one_square_per_image_at_its_own_place():
    torch.manual_seed(0)
    x = torch.ones(32, 3, 16, 16)
    out = cutout(x, 0.5)
    masks = out[:, 0] == 0
    assert torch.equal(masks.unsqueeze(1).expand_as(out), out == 0)  # the same square in every channel
    sizes = masks.sum(dim=(1, 2))
    assert sizes.max() == 64 and sizes.min() > 0  # an 8x8 square, clipped at the border for some
    assert len({tuple(m.nonzero()[0].tolist()) for m in masks}) > 5  # at different places


def test_color_is_per_sample_and_differentiable():
    torch.manual_seed(0)
    x = torch.zeros(4, 3, 8, 8, requires_grad=True)
    out = color(x)
    # a constant image stays constant under saturation and contrast: only brightness (u - 0.5) is left
    per_image = out.detach().flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image))
    assert len(set(per_image[:, 0].tolist())) == 4 and per_image.abs().max() <= 0.5
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_diffaugment_passes_gradients_to_g_and_keeps_unaugmented_samples_with_p():
    torch.manual_seed(0)
    x = torch.randn(256, 3, 8, 8, requires_grad=True)
    out = aug()(x, 0)
    out.square().sum().backward()
    assert x.grad.abs().sum() > 0
    half = aug(p=0.5)(x.detach(), 0)
    unchanged = (half == x.detach()).flatten(1).all(1).float().mean()
    assert 0.35 < float(unchanged) < 0.65
    assert torch.equal(aug(p=0.0)(x.detach(), 0), x.detach())


def test_adaptive_p_rises_when_d_overfits_and_falls_otherwise():
    up = aug(p=0.0, target=0.6, interval=4, speed_images=1000)
    for _ in range(40):
        up.observe(torch.full((50,), 3.0))  # D is sure of every real sample: sign = +1 > 0.6
    # 10 adjustments of 4 * 50 images / 1000 each: p = 2 (clamped to 1)
    assert up.probability.value == 1.0
    down = aug(p=1.0, target=0.6, interval=4, speed_images=1000)
    for _ in range(8):
        down.observe(torch.tensor([1.0, -1.0] * 25))  # E sign = 0 < 0.6
    assert down.probability.value == pytest.approx(1.0 - 2 * 0.2)
    fixed = aug(p=0.3)
    fixed.observe(torch.full((50,), 3.0))
    assert fixed.probability.value == pytest.approx(0.3)


def test_adaptive_p_rises_in_training_when_d_memorises_a_tiny_real_set(tmp_path):
    """Real training: 8 real images, D learns them by heart, r_t goes to 1 and p climbs."""
    cfg = config.load(None, IMAGES + ["data={name: noise_images, n: 8, channels: 3, resolution: 28}",
                                      "augment=[{name: diffaugment, p: 0.0, target: 0.6, speed_images: 2000}]",
                                      "train.steps=60", "optim.discriminator.lr=0.002"])
    trainer = Trainer.start(cfg, tmp_path / "run")
    trainer.fit()
    assert trainer.exp.augmentations[0].probability.value > 0.2


def test_augmentation_reaches_real_and_fake_in_both_phases_and_the_penalty(tmp_path):
    cfg = config.load(None, IMAGES + ["augment=[{name: diffaugment}]", "loss=rpgan",
                                      "regularizers=[{name: r1, weight: 1}]", "train.steps=1", "train.n_critic=2"])
    trainer = Trainer.start(cfg, tmp_path / "run")
    reals, seen = [], []
    original_sample = trainer.exp.data.sample

    def sample(n):
        batch = original_sample(n)
        reals.append(batch[0].detach().clone())
        return batch

    trainer.exp.data.sample = sample
    original = trainer.augment

    def spy(x):
        is_real = any(r.shape == x.shape and torch.equal(r, x.detach()) for r in reals)
        seen.append(("real" if is_real else "fake", x.requires_grad))
        return original(x)

    trainer.augment = spy
    trainer.train_step()
    # per D step (2): real and fake in the loss, and the real points R1 differentiates at; G's step: a real batch
    # (RpGAN) and the fakes, which carry G's graph
    assert [kind for kind, _ in seen] == ["real", "fake", "real"] * 2 + ["real", "fake"]
    assert seen[-1][1] and not seen[-2][1]


def test_diffaugment_on_toy_data_and_bad_values_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="augment.0 .diffaugment. applies to image data"):
        Trainer.start(config.load(None, FAST + ["augment=[diffaugment]"]), tmp_path / "toy")
    for bad, key in (("p: 2", "augment.0.p"), ("policy: [blur]", "augment.0.policy"),
                     ("target: 3", "augment.0.target"), ("interval: 0", "augment.0.interval")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            config.load(None, IMAGES + [f"augment=[{{name: diffaugment, {bad}}}]"])
    with pytest.raises(ConfigError, match="now an augmentation"):
        config.load(None, ["regularizers=[{name: noise}]"])


def test_instance_noise_std_and_annealing():
    noise = AUGMENTATIONS.build({"name": "noise", "sigma": 0.5, "anneal_steps": 100}, "augment.0")
    assert noise.sigma_at(0) == 0.5 and noise.sigma_at(50) == 0.25 and noise.sigma_at(100) == 0.0
    x = torch.zeros(200_000, 1)
    assert noise(x, 0).std().item() == pytest.approx(0.5, rel=0.01)
    assert torch.equal(noise(x, 150), x)


def test_schedule_shapes_follow_their_formulas():
    cos = Schedule("k", "cosine", 2e-4, 5e-5, 100)
    assert cos.value(0, 10) == pytest.approx(2e-4) and cos.value(100, 10) == pytest.approx(5e-5)
    assert cos.value(50, 10) == pytest.approx(2e-4 + (5e-5 - 2e-4) * 0.5)
    assert cos.value(25, 10) == pytest.approx(2e-4 + (5e-5 - 2e-4) * (1 - math.cos(math.pi / 4)) / 2)
    assert cos.value(500, 10) == pytest.approx(5e-5)  # held at the end
    lin = Schedule("k", "linear", 1.0, 0.0, None)  # steps null: train.steps
    assert lin.value(5, 10) == pytest.approx(0.5)
    assert Schedule("k", "constant", 3.0, 3.0, None).value(7, 10) == 3.0


def test_schedules_set_lr_betas_penalty_weight_and_augmentation_p_before_each_step(tmp_path):
    cfg = config.load(None, IMAGES + [
        "augment=[{name: diffaugment, p: 0.0}]", "regularizers=[{name: r1, weight: 1}]", "train.steps=4",
        "schedules=[{name: linear, key: optim.generator.lr, start: 0.004, end: 0.0, steps: 4},"
        " {name: linear, key: optim.discriminator.betas.1, start: 0.9, end: 0.98, steps: 4},"
        " {name: linear, key: regularizers.0.weight, start: 4.0, end: 0.0, steps: 4},"
        " {name: linear, key: augment.0.p, start: 0.0, end: 0.8, steps: 4}]"])
    trainer = Trainer.start(cfg, tmp_path / "run")
    exp = trainer.exp
    for step in range(3):
        trainer.train_step()
        assert exp.opt_g.param_groups[0]["lr"] == pytest.approx(0.004 * (1 - step / 4))
        assert exp.opt_d.param_groups[0]["betas"][1] == pytest.approx(0.9 + 0.08 * step / 4)
        assert exp.regularizers[0].weight == pytest.approx(4.0 * (1 - step / 4))
        assert exp.augmentations[0].probability.value == pytest.approx(0.8 * step / 4)


def test_a_schedule_of_an_entry_the_run_lacks_is_skipped_with_a_warning_and_two_of_a_name_are_an_error(tmp_path):
    run = tmp_path / "run"
    cfg = config.load(None, FAST + ["regularizers=[]", "schedules=[{name: cosine, key: regularizers.r1.weight, "
                                    "start: 1}, {name: linear, key: optim.generator.lr, start: 0.001, end: 0.0}]"])
    with pytest.warns(UserWarning, match=r"schedules.0 \(regularizers.r1.weight\) is not applied"):
        trainer = Trainer.start(cfg, run)
    assert [sch.key for sch in trainer.exp.schedules.schedules] == ["optim.generator.lr"]  # the other one stays
    result = run_cli_here("train", "--out", str(tmp_path / "two"), *FAST, "train.steps=2",
                          "regularizers=[{name: r1, weight: 1}, {name: r1, weight: 2}]",
                          "schedules=[{name: cosine, key: regularizers.r1.weight, start: 1}]", cwd=tmp_path)
    assert_user_error(result, "regularizers has 2 entries named 'r1'")
    assert not (tmp_path / "two").exists()


def test_a_schedule_by_name_sets_that_entry_wherever_it_stands(tmp_path):
    """regularizers.r2.weight is the entry named r2, here the second: the same as regularizers.1.weight."""
    cfg = config.load(None, IMAGES + [
        "regularizers=[{name: r1, weight: 1}, {name: r2, weight: 1}]", "train.steps=4",
        "schedules=[{name: linear, key: regularizers.r2.weight, start: 4.0, end: 0.0, steps: 4}]"])
    trainer = Trainer.start(cfg, tmp_path / "run")
    for step in range(3):
        trainer.train_step()
        assert trainer.exp.regularizers[1].weight == pytest.approx(4.0 * (1 - step / 4))
        assert trainer.exp.regularizers[0].weight == 1.0


@pytest.mark.parametrize("spec,needle", [
    ("{name: cosine, key: optim.generator.momentum, start: 1}", "schedules.0.key 'optim.generator.momentum' is not"),
    ("{name: cosine, key: optim.critic.lr, start: 1}", "no network 'critic'"),
    ("{name: cosine, key: regularizers.3.weight, start: 1}", "regularizers has 1 entries"),
    ("{name: cosine, key: augment.0.p, start: 1}", "augment has 0 entries"),
    ("{name: cosine, start: 1}", "missing key schedules.0.key"),
    ("{name: wavy, key: optim.generator.lr, start: 1}", "unknown schedule 'wavy'"),
    ("{name: linear, key: optim.generator.lr, start: 1, steps: 0}", "schedules.0.steps"),
])
def test_bad_schedules_are_one_line_errors(tmp_path, spec, needle):
    result = run_cli_here("train", "--out", str(tmp_path / "run"), *FAST, f"schedules=[{spec}]", cwd=tmp_path)
    assert_user_error(result, needle)
    assert not (tmp_path / "run").exists()


def test_an_lr_schedule_and_lr_decay_do_not_combine(tmp_path):
    result = run_cli_here("train", "--out", str(tmp_path / "run"), *FAST, "optim.lr_decay=linear",
                     "schedules=[{name: cosine, key: optim.generator.lr, start: 0.001}]", cwd=tmp_path)
    assert_user_error(result, "optim.lr_decay")


def test_adaptive_p_and_schedules_resume_bit_exactly(tmp_path):
    overrides = IMAGES + ["augment=[{name: diffaugment, p: 0.2, target: 0.6, interval: 2, speed_images: 500}]",
                          "regularizers=[{name: r1, weight: 1}]", "train.steps=8", "train.checkpoint_every=4",
                          "schedules=[{name: cosine, key: regularizers.0.weight, start: 1.0, end: 0.1}]"]
    # killed right after its first checkpoint, then resumed
    full, resumed, resumed_at = full_and_resumed(lambda name: Trainer.start(config.load(None, overrides), tmp_path / name))
    a, b = full.exp.state_dict(), resumed.exp.state_dict()
    for name, net in a["networks"].items():
        for key, value in net.items():
            torch.testing.assert_close(value, b["networks"][name][key], rtol=0, atol=0)
    assert float(full.exp.augmentations[0].probability.p) == float(resumed.exp.augmentations[0].probability.p)
