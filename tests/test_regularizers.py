"""Closed forms for the regularizers on discriminators whose input gradient is known."""
import copy

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.registry import REGULARIZERS, load_builtins
from gankit.regularizers import DStepContext

load_builtins()


def reg(name, **kw):
    return REGULARIZERS.build({"name": name, **kw}, "regularizers.0")


def linear_critic(w):
    layer = nn.Linear(len(w), 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([w]))
        layer.bias.fill_(0.3)
    return layer, lambda x: layer(x).squeeze(1)


def context(critic, n=32, dim=2):
    real, fake = torch.randn(n, dim), torch.randn(n, dim) + 2
    return DStepContext(critic, real, fake, critic(real), critic(fake))


@pytest.mark.parametrize("name", ["r1", "r2"])
def test_r1_r2_of_linear_d_is_half_gamma_w_squared(name):
    gamma = 3.0
    layer, critic = linear_critic([1.5, -2.0])
    r = reg(name, weight=gamma)
    value = r.weight * r.penalty(context(critic))
    assert value.item() == pytest.approx(gamma / 2 * (1.5**2 + 2.0**2), rel=1e-6)
    # It is differentiable in D's weights: d/dw gamma/2 ||w||^2 = gamma * w.
    value.backward()
    torch.testing.assert_close(layer.weight.grad, gamma * torch.tensor([[1.5, -2.0]]))


def test_r1_uses_real_and_r2_generated_samples():
    # D(x) = x0^2 / 2 has gradient (x0, 0): the penalty is E x0^2 / 2 over the chosen samples.
    critic = lambda x: 0.5 * x[:, 0] ** 2  # noqa: E731
    real, fake = torch.full((4, 2), 1.0), torch.full((4, 2), 3.0)
    ctx = DStepContext(critic, real, fake, critic(real), critic(fake))
    assert reg("r1").penalty(ctx).item() == pytest.approx(0.5)
    assert reg("r2").penalty(ctx).item() == pytest.approx(4.5)


def test_gradient_penalty_is_zero_for_unit_norm_linear_d_and_one_for_norm_two():
    _, critic = linear_critic([0.6, 0.8])
    assert reg("gp").penalty(context(critic)).item() == pytest.approx(0.0, abs=1e-9)
    _, critic = linear_critic([0.0, 2.0])
    assert reg("gp").penalty(context(critic)).item() == pytest.approx(1.0, rel=1e-6)
    assert reg("gp", target=2.0).penalty(context(critic)).item() == pytest.approx(0.0, abs=1e-9)


def test_dragan_penalty_on_linear_d_and_batch_mean():
    _, critic = linear_critic([3.0, 0.0])
    value = reg("dragan").penalty(context(critic, n=7))
    assert value.dim() == 0 and value.item() == pytest.approx(4.0, rel=1e-6)
    # With no spread in the data (a point mass) the absolute noise scale still works.
    point = torch.zeros(5, 2)
    ctx = DStepContext(critic, point, point, critic(point), critic(point))
    assert reg("dragan", noise_std=0.5).penalty(ctx).item() == pytest.approx(4.0, rel=1e-6)


def test_rlc_anchors_are_moving_averages():
    r = reg("rlc", decay=0.9)
    critic = lambda x: x[:, 0]  # noqa: E731

    def step(real_value, fake_value):
        real, fake = torch.full((4, 1), real_value), torch.full((4, 1), fake_value)
        return r.penalty(DStepContext(critic, real, fake, critic(real), critic(fake))).item()

    # First batch seeds the anchors: a_R = 1, a_F = -1; penalty (1 - -1)^2 + (-1 - 1)^2 = 8.
    assert step(1.0, -1.0) == pytest.approx(8.0)
    # Second batch: a_R = 0.9*1 + 0.1*3 = 1.2, a_F = 0.9*-1 + 0.1*1 = -0.8.
    value = step(3.0, 1.0)
    assert r.anchor_real.item() == pytest.approx(1.2) and r.anchor_fake.item() == pytest.approx(-0.8)
    assert value == pytest.approx((3 + 0.8) ** 2 + (1 - 1.2) ** 2, rel=1e-6)
    # The anchors are state that a checkpoint carries.
    assert set(r.state_dict()) == {"anchor_real", "anchor_fake", "started"}


def test_weight_clipping_clamps_every_parameter():
    model = nn.Sequential(nn.Linear(2, 8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 5)
    reg("clip", clip=0.05).after_d_step(model)
    for p in model.parameters():
        assert p.abs().max().item() <= 0.05 + 1e-7


@pytest.mark.parametrize("spec,key", [
    ({"name": "r1", "weight": -1.0}, "regularizers.0.weight"),
    ({"name": "r1", "every": 0}, "regularizers.0.every"),
    ({"name": "clip", "clip": 0.0}, "regularizers.0.clip"),
    ({"name": "rlc", "decay": 1.0}, "regularizers.0.decay"),
    ({"name": "r1", "gamma": 1.0}, "regularizers.0.gamma"),
    ({"name": "gp", "precision": "fp16"}, "regularizers.0.precision"),
])
def test_bad_parameters_name_the_key(spec, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        REGULARIZERS.build(spec, "regularizers.0")


@pytest.mark.parametrize("name", ["r1", "gp", "dragan"])
def test_bf16_penalty_is_close_to_fp64_and_fp32_is_exact(name):
    """precision=bf16 really runs in bf16 (it differs from fp32) and stays close to the fp64 penalty and its
    gradient in D's weights; benchmarks/penalty_precision.py measures the same on a trained critic."""
    from gankit.registry import MODELS

    torch.manual_seed(0)
    critic = MODELS.build({"name": "dcgan", "width": 16, "batch_norm": False}, "d", "discriminator", (1, 28, 28), 8)
    reference = copy.deepcopy(critic).double()
    real, fake = torch.rand(16, 1, 28, 28) * 2 - 1, torch.rand(16, 1, 28, 28) * 2 - 1

    def penalty_and_grad(model, precision, dtype):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same interpolation / perturbation for every precision
        x, y = real.to(dtype), fake.to(dtype)
        value = reg(name, precision=precision).penalty(DStepContext(model, x, y, model(x), model(y)))
        value.backward()
        grads = [torch.zeros(p.numel(), dtype=torch.float64) if p.grad is None else p.grad.double().flatten()
                 for p in model.parameters()]  # the logit's bias cannot change an input gradient: no grad
        return value.double(), torch.cat(grads)

    ref_value, ref_grad = penalty_and_grad(reference, "fp32", torch.float64)
    f32_value, f32_grad = penalty_and_grad(critic, "fp32", torch.float32)
    b16_value, b16_grad = penalty_and_grad(critic, "bf16", torch.float32)
    assert abs(f32_value / ref_value - 1) < 1e-4
    assert (f32_grad - ref_grad).norm() / ref_grad.norm() < 1e-3
    assert b16_value != f32_value  # the flag is live
    assert abs(b16_value / ref_value - 1) < 0.05
    assert torch.nn.functional.cosine_similarity(b16_grad, ref_grad, dim=0) > 0.99


@pytest.mark.parametrize("alpha", ["per_sample", "per_batch"])
def test_gradient_penalty_interpolation_weight_per_sample_or_per_batch(alpha):
    """D(x) = x0^2 / 2 has gradient norm |x0|: with real x0 = 0 and fake x0 = 1 the penalty is E (a - 1)^2 over
    the interpolation weights a; per_batch draws a single a for every sample (the reference code)."""
    critic = lambda x: 0.5 * x[:, 0] ** 2  # noqa: E731
    real, fake = torch.zeros(64, 2), torch.ones(64, 2)
    seen = []

    def recording(x):
        seen.append(x[:, 0].detach().clone())
        return critic(x)

    ctx = DStepContext(recording, real, fake, critic(real), critic(fake))
    torch.manual_seed(0)
    value = reg("gp", alpha=alpha).penalty(ctx).item()
    a = 1 - seen[-1]  # x_hat = a * real + (1 - a) * fake, so x0 = 1 - a
    assert value == pytest.approx(((1 - a) - 1).square().mean().item(), rel=1e-5)
    assert (a.unique().numel() == 1) == (alpha == "per_batch")
